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
 * A job's input may also be streamed (a {@linkcode StreamedInput}: `size` and an async iterable
 * of chunks, such as a request body's stream): the worker allocates `size` bytes in the instance,
 * then pulls the chunks one at a time from the main thread through its channel (at most
 * {@linkcode MAX_INPUT_CHUNK} bytes per reply) and writes each straight into the instance's
 * memory, which is the only place the process holds the whole input. The main thread reads the
 * next chunk only when the worker asks for it (back-pressure to the producer). More or fewer
 * bytes than `size`, or a producer that throws, fail the job with code 400
 * ({@linkcode INPUT_ERROR_CODE}). A streamed input is the request's body: `request_get_field`
 * answers the meta field `body` (and JSON fields of it) from the instance's memory, checked
 * unchanged since the host wrote it (the write tracking below marks its chunks; the bytes at its
 * edges are compared). If the runnable wrote over its input first, the call answers an error
 * rather than other bytes (Atmo answered the original body; no SDK changes its input before
 * reading the body). A body of up to 16 KiB, or one given to a module whose writes are not
 * tracked and that reads its request, is copied once more and answered as it came. A large output
 * leaves the instance once (a copy out of its memory, which the reset reuses) and is transferred
 * to the main thread, not copied again.
 *
 * Every job starts from a clean state: the one right after instantiation and the module's start
 * function. Nothing a job writes to memory or to a global (the module's private ones included,
 * such as Rust's `__stack_pointer`) is visible to the next, whether it returned, trapped, hit a
 * limit or grew its memory. A worker keeps one instance per runnable and, once a job is
 * answered, writes back a snapshot taken after initialisation: only the 4 KiB chunks the job
 * wrote, as the instrumentation marks them (src/wasm/_instrument.ts, _host.ts). Limits:
 * - A module that changes tables (`table.set`, `table.grow`, ...) or drops data or element
 *   segments gets a new instance, start function included, for every job: the snapshot does not
 *   hold that state. So does one with a mutable `v128` global (JS cannot read it).
 * - Writes are tracked only in a module with a single memory and no atomic or SIMD stores; other
 *   modules get every byte of their memories copied back after each job (~25 µs per MiB here).
 * - Tracked stores run a few more instructions each (marking their chunk in a byte map).
 * - Memory does not shrink: a memory that grew keeps its pages, zeroed, while the size the module
 *   sees (`memory.size`) is restored. Accesses past that size but within the real one do not
 *   trap. Without write tracking, an instance whose memory grew by more than 16 pages is replaced.
 * - The snapshot holds a copy of each memory: a worker keeps twice each runnable's memory.
 *
 * Host functions (module `env`, every one also as `<name>_swift`): `return_result`,
 * `return_error`, `return_abort`, `log_msg`, `request_get_field`, `request_set_field` (changes
 * the job's own copy of the request, as Reactr), `get_ffi_result`, `add_ffi_var` (variables for
 * the next query, in order), `cache_set`, `cache_get` (the pool's {@linkcode CacheBackend},
 * by default a {@linkcode RunnableCache} shared by all its workers), `resp_set_header`
 * (`RunResult.headers`), `get_secret_value` (the `secrets` option only), `fetch_url` (the
 * pool's `fetch` on the main thread, the worker blocked meanwhile; only hosts in
 * `allowedHosts`, none by default, a loopback or private address only through an exact entry;
 * `authHeaders` adds Atmo's per-host `Authorization`; bounded by `fetchTimeoutMs`, the job's
 * time left and `fetchMaxBytes`: src/wasm/_fetch_call.ts), `graphql_query` (a POST of the query
 * and the job's variables under the same rules; answers `data`, GraphQL `errors` are the
 * call's error: _graphql_call.ts), `get_static_file` (the pool's {@linkcode StaticFiles}, such
 * as a {@linkcode StaticDir}), `db_exec` (the pool's {@linkcode DatabaseBackend}); and a minimal
 * `wasi_snapshot_preview1` (src/wasm/_wasi.ts). Without `staticFiles` or `database`, those
 * calls answer an error naming what to configure. Every call that leaves the worker is bridged
 * with `Atomics.wait` (the worker blocks, the main thread awaits the service): nothing is
 * fetched ahead of time.
 *
 * ```ts
 * using pool = new RunnablePool({
 *   allowedHosts: ["api.example.com"],
 *   authHeaders: { "api.example.com": "Bearer s3cr3t" },
 *   staticFiles: await StaticDir.open("static"),
 * });
 * const runnable = await Runnable.load("hostfns-rs", bytes, { pool });
 * ```
 *
 * @module
 */

export { loadRunnables, runnableFiles } from "./load_runnables.ts";
export {
  DEFAULT_MAX_MEMORY_PAGES,
  DEFAULT_MAX_OUTPUT_BYTES,
  DEFAULT_TIMEOUT_MS,
  type JobCancellation,
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
export { INPUT_ERROR_CODE, MAX_INPUT_CHUNK, type StreamedInput } from "./_input_call.ts";
export {
  DEFAULT_FETCH_MAX_BYTES,
  DEFAULT_FETCH_TIMEOUT_MS,
  MAX_FETCH_BYTES,
  MAX_FETCH_TIMEOUT_MS,
} from "./_fetch_call.ts";
export {
  DEFAULT_CACHE_MAX_BYTES,
  DEFAULT_CACHE_MAX_ENTRIES,
  RunnableCache,
  type RunnableCacheOptions,
} from "./runnable_cache.ts";
export type { CacheBackend, DatabaseBackend, QueryVariable, StaticFiles } from "./host_services.ts";
export { MAX_STATIC_FILE_BYTES, StaticDir } from "./static_dir.ts";
export {
  DEFAULT_CONCURRENCY,
  INTERRUPT_GRACE_MS,
  RunnablePool,
  type RunnablePoolOptions,
  type WorkerPermissions,
} from "./runnable_pool.ts";
