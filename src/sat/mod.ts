/**
 * The sat layer: attach to a proxy through the relay and serve invocations.
 *
 * @module
 */

export { SatNode, type SatNodeOptions } from "./sat_node.ts";
export { requestlessFunctions, wasmRunner } from "./wasm_runner.ts";
export { createStandaloneHandler, type StandaloneHandlerOptions } from "./standalone_handler.ts";
export {
  DeployedRunnables,
  type DeployedRunnablesOptions,
  type HostServices,
} from "./deployed_runnables.ts";
export { runnableDigests } from "./runnable_digests.ts";
export { SatMetrics } from "./sat_metrics.ts";
export { hostServicesFrom } from "./host_services_from.ts";
export { observedRunner } from "./observed_runner.ts";
