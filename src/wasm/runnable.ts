/**
 * A WebAssembly function that follows Suborbital's runnable ABI, compiled once and run in a
 * {@linkcode RunnablePool}'s workers.
 *
 * @module
 */

import { fetchPolicy } from "./_fetch_call.ts";
import { IMPORT_MODULES, isSupportedImport } from "./_host.ts";
import { isInlineable } from "./_inline_lane.ts";
import { isStreamedInput, type StreamedInput } from "./_input_call.ts";
import { instrument, MAX_WASM32_PAGES } from "./_instrument.ts";
import {
  ADOPT,
  checkSecrets,
  type PoolRunnable,
  RELEASE,
  RETAIN,
  SUBMIT,
} from "./_pool_internals.ts";
import { RunnableError } from "./runnable_error.ts";
import type { ByteAllocator } from "../wire/mod.ts";
import { RunnablePool, type RunnablePoolOptions } from "./runnable_pool.ts";

/** A job's time limit unless told otherwise: 10 s. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** A runnable's memory limit unless told otherwise: 1024 pages of 64 KiB, 64 MiB. */
export const DEFAULT_MAX_MEMORY_PAGES = 1024;
/** Default output limit of a job: 16 MiB. */
export const DEFAULT_MAX_OUTPUT_BYTES: number = 16 * 1024 * 1024;
/** Bytes of a WebAssembly page. */
const WASM_PAGE = 65536;

/** The exports of Suborbital's ABI, and their kinds. */
const REQUIRED_EXPORTS: ReadonlyArray<readonly [string, WebAssembly.ImportExportKind]> = [
  ["allocate", "function"],
  ["deallocate", "function"],
  ["run_e", "function"],
  ["memory", "memory"],
];
/** Imports that read or change the job's request: only their modules get it. */
const REQUEST_FUNCTIONS: readonly string[] = [
  "request_get_field",
  "request_get_field_swift",
  "request_set_field",
  "request_set_field_swift",
];
/**
 * A job's outcome: the output (with the response headers the module set with
 * `resp_set_header`, if any), or an error with a status code and a message.
 */
export type RunResult =
  | { ok: true; output: Uint8Array; headers?: Record<string, string> }
  | { ok: false; code: number; message: string };

/**
 * The request a job serves, as `env.request_get_field` exposes it: field type 0 reads
 * `method`, `url`, `id` and `body`; 1 a string field of a JSON object body; 2 `headers`
 * (names compared case-insensitively; give them in lower case); 3 `params` (URL parameters);
 * 4 `state`; 5 a query parameter of `url`.
 */
export interface RequestInfo {
  /** HTTP method, such as `POST`. */
  method: string;
  /** Request URL (a path with a query is enough for query parameters). */
  url: string;
  /** The request's identifier, also given to log messages as `requestId`. */
  id: string;
  /** The raw body. */
  body: Uint8Array;
  /** Headers by lower-case name. */
  headers: Record<string, string>;
  /** URL parameters of the route, such as `id` in `/users/:id`. */
  params: Record<string, string>;
  /** Values that earlier steps of the handler stored. */
  state: Record<string, Uint8Array>;
}

/** Severity of a runnable's log message (`log_msg` levels 1 to 4; others read as info). */
export type RunnableLogLevel = "error" | "warn" | "info" | "debug";

/** Context of a runnable's log message (or of the pool's message about the runnable). */
export interface RunnableLogFields {
  /** The runnable's name. */
  runnable: string;
  /** The job's ident, when the message comes from a job. */
  ident?: number;
  /** `RequestInfo.id` of the job's request, if it had one. */
  requestId?: string;
}

/** Receives log messages; the shape of the other layers' `log` options. */
export type RunnableLog = (
  level: RunnableLogLevel,
  message: string,
  fields: RunnableLogFields,
) => void;

/** Options of {@linkcode Runnable.load}. */
export interface RunnableOptions extends RunnablePoolOptions {
  /** Most time a job may run, in ms (default {@linkcode DEFAULT_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Most 64 KiB pages of memory (default {@linkcode DEFAULT_MAX_MEMORY_PAGES}). */
  maxMemoryPages?: number;
  /**
   * Largest output a job may return (default {@linkcode DEFAULT_MAX_OUTPUT_BYTES}); a larger one
   * fails the job with code 500.
   */
  maxOutputBytes?: number;
  /**
   * Makes the array each output is copied into, given its size (default: a new Uint8Array, its
   * buffer the output's own). A service that copies every output on at once, as the sat does
   * into its RESULT messages, can pass one that cuts small arrays from a shared buffer
   * (`allocBytes` of src/wire/): no ArrayBuffer per job.
   */
  allocOutput?: ByteAllocator;
  /**
   * Receives the module's `log_msg` calls, after the job (at most 100 messages and 64 KiB per
   * job), and the pool's messages about the runnable. Default: dropped.
   */
  log?: RunnableLog;
  /**
   * Workers to run in. Default: a pool of the runnable's own, made with `concurrency`,
   * `workerPermissions`, `cache`, `database`, `staticFiles`, `secrets` and the fetch options,
   * closed by {@linkcode Runnable.close}. With a pool, `secrets` (if given) replaces the pool's
   * for this runnable, and so do `allowedHosts`, `authHeaders`, `fetchTimeoutMs` and
   * `fetchMaxBytes` if any is given (the others then take their defaults, not the pool's);
   * `cache`, `database` and `staticFiles` are the pool's.
   */
  pool?: RunnablePool;
}

/**
 * A one-shot cancellation without an EventTarget, which a job watches while it waits or runs
 * (the invocation layer's `Cancellation` is one). It does what an AbortSignal does for a job
 * at a fraction of the cost: no signal made and no listener added and removed per job.
 */
export interface JobCancellation {
  /** Why it was cancelled; undefined until then. */
  readonly reason: Error | undefined;
  /** Sets what cancelling does now (undefined: nothing), replacing the action set before. */
  onCancel(action: ((reason: Error) => void) | undefined): void;
}

/** Options of one {@linkcode Runnable.run}. */
export interface RunOptions {
  /** Aborting rejects the job with the signal's reason and stops its code. */
  signal?: AbortSignal;
  /**
   * Cancelling rejects the job with the reason and stops its code, as aborting `signal` does.
   * The job sets its own action on it until it settles, replacing any other.
   */
  cancellation?: JobCancellation;
}

let nextKey = 1;

/**
 * A loaded runnable.
 *
 * Each job: `ptr = allocate(len)`, the input written at `ptr`, `run_e(ptr, len, ident)` with a
 * random non-negative int32 `ident`, the `return_result` or `return_error` the module made for
 * that ident collected, then `deallocate(ptr, len)`. A trap, an unsupported host call, the time
 * limit or the memory limit fail the job (code 500) but never the caller: `run` resolves to a
 * {@linkcode RunResult} in every such case.
 *
 * Every job starts from the state after instantiation and the module's start function: nothing
 * one job writes is visible to the next (see mod.ts for how, and the limits).
 *
 * @example
 * ```ts
 * const bytes = await Deno.readFile("runnables/helloworld-rs/helloworld-rs.wasm");
 * using hello = await Runnable.load("helloworld-rs", bytes, { timeoutMs: 1000 });
 * const result = await hello.run(new TextEncoder().encode("my friend"));
 * if (result.ok) new TextDecoder().decode(result.output); // "hello, my friend"
 * ```
 */
export class Runnable {
  /** The runnable's name, as steps of a Directive call it. */
  readonly name: string;
  /** Most time a job may run, in ms. */
  readonly timeoutMs: number;
  /** Most 64 KiB pages of memory. */
  readonly maxMemoryPages: number;
  /** Largest output a job may return, in bytes. */
  readonly maxOutputBytes: number;
  /**
   * Host functions the module imports that the host does not implement yet
   * (`"env.does_not_exist"`...): a job that calls one fails, naming it.
   */
  readonly unsupportedImports: readonly string[];
  /**
   * Whether the module imports a function that reads or changes the request (`env`'s
   * `request_get_field`, `request_set_field`): a module that does not can never see the
   * request's method, URL, headers, params or state, only its input.
   */
  readonly readsRequest: boolean;
  readonly #runnable: PoolRunnable;
  readonly #pool: RunnablePool;
  #closed = false;

  private constructor(
    runnable: PoolRunnable,
    pool: RunnablePool,
    unsupportedImports: string[],
    maxOutputBytes: number,
  ) {
    this.name = runnable.name;
    this.timeoutMs = runnable.timeoutMs;
    this.maxMemoryPages = runnable.maxMemoryPages;
    this.maxOutputBytes = maxOutputBytes;
    this.readsRequest = runnable.readsRequest;
    this.unsupportedImports = Object.freeze(unsupportedImports);
    this.#runnable = runnable;
    this.#pool = pool;
    pool[RETAIN]();
  }

  /**
   * Compiles a runnable once, with its memory capped and its code made interruptible.
   *
   * @param name the runnable's name, used in every message about it
   * @param bytes the WebAssembly module
   * @param options limits, log, and the pool to run in
   * @returns the runnable, ready to run
   * @throws {RunnableError} the bytes are not WebAssembly, an export of the ABI is missing, an
   *   import cannot be provided, or the memory starts above `maxMemoryPages`
   * @throws {TypeError} `name` is empty, `bytes` is not a Uint8Array, `secrets` is not a
   *   record of strings, or an `allowedHosts` entry is not a host
   * @throws {RangeError} `timeoutMs`, `maxMemoryPages`, `fetchTimeoutMs` or `fetchMaxBytes` is
   *   out of range
   */
  static async load(
    name: string,
    bytes: Uint8Array,
    options: RunnableOptions = {},
  ): Promise<Runnable> {
    if (typeof name !== "string" || name === "") {
      throw new TypeError(`a runnable needs a non-empty name, got ${JSON.stringify(name)}`);
    }
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError(`runnable "${name}": bytes must be a Uint8Array`);
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(
        `runnable "${name}": timeoutMs must be a positive number, got ${timeoutMs}`,
      );
    }
    const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes < 0) {
      throw new RangeError(
        `runnable "${name}": maxOutputBytes must be a whole number, got ${maxOutputBytes}`,
      );
    }
    const maxMemoryPages = options.maxMemoryPages ?? DEFAULT_MAX_MEMORY_PAGES;
    if (
      !Number.isSafeInteger(maxMemoryPages) || maxMemoryPages < 1 ||
      maxMemoryPages > MAX_WASM32_PAGES
    ) {
      throw new RangeError(
        `runnable "${name}": maxMemoryPages must be an integer from 1 to ${MAX_WASM32_PAGES}, got ${maxMemoryPages}`,
      );
    }

    // WebAssembly's BufferSource excludes shared memory: copy such bytes.
    const source = bytes.buffer instanceof ArrayBuffer
      ? bytes as Uint8Array<ArrayBuffer>
      : new Uint8Array(bytes);
    const fail = (message: string, cause?: unknown) =>
      new RunnableError(`runnable "${name}" ${message}`, { runnable: name, cause });
    if (!WebAssembly.validate(source)) {
      const cause = await WebAssembly.compile(source).then(
        () => undefined,
        (error: unknown) => error,
      );
      throw fail(`is not a valid WebAssembly module: ${cause}`, cause);
    }
    let module: WebAssembly.Module;
    let resettable: boolean;
    try {
      const instrumented = instrument(source, { maxMemoryPages });
      resettable = instrumented.resettable;
      module = await WebAssembly.compile(instrumented.bytes);
    } catch (error) {
      throw fail(`cannot be sandboxed: ${error instanceof Error ? error.message : error}`, error);
    }

    const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
    const missing = REQUIRED_EXPORTS.filter(([name, kind]) => exports.get(name) !== kind);
    if (missing.length > 0) {
      const list = missing.map(([name, kind]) => `"${name}" (${kind})`).join(", ");
      throw fail(
        `does not export ${list}; a runnable must export allocate, deallocate, run_e and memory ` +
          "(Suborbital's runnable ABI)",
      );
    }
    const unsupported: string[] = [];
    const refused: string[] = [];
    let readsRequest = false;
    for (const { module: from, name: field, kind } of WebAssembly.Module.imports(module)) {
      if (from === "env" && REQUEST_FUNCTIONS.includes(field)) readsRequest = true;
      const label = `${from}.${field} (${kind})`;
      if (kind !== "function" || !IMPORT_MODULES.includes(from)) refused.push(label);
      else if (!isSupportedImport(from, field)) unsupported.push(`${from}.${field}`);
    }
    if (refused.length > 0) {
      throw fail(
        `imports ${refused.join(", ")}, which the host cannot provide; it provides functions of ` +
          `${IMPORT_MODULES.map((m) => `"${m}"`).join(" and ")} only`,
      );
    }

    const secrets = options.pool && options.secrets
      ? checkSecrets(options.secrets, `runnable "${name}": secrets`)
      : undefined;
    const ownFetch = options.allowedHosts !== undefined || options.authHeaders !== undefined ||
      options.fetchTimeoutMs !== undefined || options.fetchMaxBytes !== undefined;
    const fetch = options.pool && ownFetch
      ? fetchPolicy(options, `runnable "${name}": `)
      : undefined;
    const pool = options.pool ?? new RunnablePool(options);
    if (!options.pool) pool[ADOPT]();
    if (pool.closed) throw new TypeError(`runnable "${name}": the pool is closed`);
    const runnable: PoolRunnable = {
      key: nextKey++,
      name,
      maxMemoryPages,
      resettable,
      module,
      timeoutMs,
      log: options.log,
      readsRequest,
      secrets: secrets ?? pool.secrets,
      fetch,
      inlineable: isInlineable(module),
      allocOutput: options.allocOutput,
    };
    return new Runnable(runnable, pool, unsupported, maxOutputBytes);
  }

  /**
   * Runs one job.
   *
   * The input is a Uint8Array (copied; the caller may reuse it) or a {@linkcode StreamedInput}:
   * `size` bytes that the job's worker pulls from `chunks` once the job starts, one chunk at a
   * time (the next is read only when the worker asks for it), and writes straight into the
   * instance's memory, the only place that holds them. The job fails with code 400 if `chunks`
   * yields more or fewer than `size` bytes, or throws; with 413, before any chunk is read, if
   * `size` exceeds the memory limit. Reading counts against the time limit. With a streamed input
   * the request's body is the input: `request.body` is not read (pass an empty array), and
   * `request_get_field` answers the body from the instance's memory (mod.ts says when it
   * cannot). The iterator is told to stop (`return()`) if the job ends before it is done; a job
   * that never starts (aborted, or the pool closed) never opens it.
   *
   * @param input the job's input, whole or streamed
   * @param request the request the job serves, for `request_get_field` (read when the job
   *   starts: keep it unchanged until the promise settles)
   * @param options an abort signal or a cancellation
   * @returns the output, or `{ ok: false, code, message }` when the module returned an error,
   *   trapped, called an unsupported host function, hit its time or memory limit, or its
   *   streamed input was not what it announced
   * @throws {TypeError} `input` is neither a Uint8Array nor a {@linkcode StreamedInput} (the
   *   promise rejects)
   * @throws {RangeError} a streamed input's `size` is not a whole number (the promise rejects)
   * @throws {Error} the runnable or its pool is closed, or `signal` aborted or `cancellation`
   *   cancelled (its reason)
   * @example
   * ```ts
   * const file = await Deno.open("body.bin");
   * const { size } = await file.stat();
   * const result = await runnable.run({ size, chunks: file.readable }, request);
   * ```
   */
  run(
    input: Uint8Array | StreamedInput,
    request?: RequestInfo,
    options: RunOptions = {},
  ): Promise<RunResult> {
    if (!(input instanceof Uint8Array)) {
      if (!isStreamedInput(input)) {
        return Promise.reject(
          new TypeError(
            `runnable "${this.name}": input must be a Uint8Array or a StreamedInput ` +
              "({ size, chunks: AsyncIterable<Uint8Array> })",
          ),
        );
      }
      if (!Number.isSafeInteger(input.size) || input.size < 0) {
        return Promise.reject(
          new RangeError(
            `runnable "${this.name}": a streamed input's size must be a whole number of bytes, ` +
              `got ${input.size}`,
          ),
        );
      }
      if (this.#closed) return Promise.reject(new Error(`runnable "${this.name}" is closed`));
      const room = this.maxMemoryPages * WASM_PAGE;
      if (input.size > room) {
        return Promise.resolve({
          ok: false,
          code: 413,
          message: `the request body of ${input.size} bytes does not fit runnable ` +
            `"${this.name}"'s memory limit of ${room} bytes (${this.maxMemoryPages} pages; raise ` +
            "maxMemoryPages)",
        });
      }
    }
    if (this.#closed) return Promise.reject(new Error(`runnable "${this.name}" is closed`));
    return this.#pool[SUBMIT](this.#runnable, input, request, options).then((result) =>
      result.ok && result.output.length > this.maxOutputBytes
        ? {
          ok: false,
          code: 500,
          message: `runnable "${this.name}" returned ${result.output.length} bytes, over its ` +
            `output limit of ${this.maxOutputBytes}`,
        }
        : result
    );
  }

  /**
   * Stops accepting jobs and frees the module in the workers; closes the pool if the runnable
   * made it (or `loadRunnables` did and this was its last runnable). Calling it again does
   * nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool[RELEASE](this.#runnable.key);
  }

  /** Same as {@linkcode Runnable.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
