/**
 * The proxy layer: HTTP by Directive, sats over secure channels through the relay.
 *
 * @module
 */

export {
  createInvoker,
  createProxyHandler,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_TIMEOUT_MS,
  InvocationFailure,
  type Invoker,
  type ProxyHandlerOptions,
  type RouteResolution,
} from "./proxy_handler.ts";
export {
  ADDRESS_FILE_NAME,
  DEFAULT_RELAY,
  MAX_PENDING_HANDSHAKES,
  ProxyNode,
  type ProxyNodeOptions,
} from "./proxy_node.ts";
export { routeResolver } from "./route_resolver.ts";
export { SatRegistry } from "./sat_registry.ts";
export { DirectiveReloader, type DirectiveReloaderOptions } from "./directive_reloader.ts";
export { Scheduler } from "./scheduler.ts";
export {
  type Deployment,
  loadDeployment,
  type LoadDeploymentOptions,
  MAX_RUNNABLE_BYTES,
} from "./deployment.ts";
export { fnKey, RunnableLocator } from "./runnable_locator.ts";
