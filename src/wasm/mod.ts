/**
 * The Wasm host: loads runnables (WebAssembly functions that follow Suborbital's runnable ABI)
 * and runs their jobs in a pool of Web Workers, each job under a time limit and a memory limit,
 * with no reach beyond the host functions of the ABI.
 *
 * ```ts
 * import { loadRunnables } from "./wasm/mod.ts";
 *
 * const runnables = await loadRunnables("runnables", {
 *   log: (level, message, fields) => logger[level](message, fields),
 * });
 * const result = await runnables.get("helloworld-rs")!.run(new TextEncoder().encode("my friend"));
 * // result: { ok: true, output: "hello, my friend" as bytes }
 * ```
 *
 * @module
 */

export { loadRunnables } from "./load_runnables.ts";
export {
  DEFAULT_MAX_MEMORY_PAGES,
  DEFAULT_TIMEOUT_MS,
  type RequestInfo,
  Runnable,
  type RunnableLog,
  type RunnableLogFields,
  type RunnableLogLevel,
  type RunnableOptions,
  type RunOptions,
  type RunResult,
} from "./runnable.ts";
export { RunnableError, type RunnableErrorOptions } from "./runnable_error.ts";
export {
  DEFAULT_CONCURRENCY,
  INTERRUPT_GRACE_MS,
  RunnablePool,
  type RunnablePoolOptions,
  type WorkerPermissions,
} from "./runnable_pool.ts";
