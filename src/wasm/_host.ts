/**
 * One instance of a runnable inside a worker, and the host functions of Suborbital's runnable
 * ABI it imports (Reactr semantics: `api/*.go` of suborbital/reactr and e2core).
 *
 * A job: `ptr = allocate(len)`, write the input at `ptr`, `run_e(ptr, len, ident)`, collect
 * whatever `return_result` / `return_error` the module called with that `ident`, then
 * `deallocate(ptr, len)`.
 *
 * Every job starts from the same state: the one after instantiation and the module's start
 * function, then its `_start` and `init` exports if it has them (as Reactr calls them), which the
 * first job runs. Right after it, the instance takes a {@linkcode Snapshot}
 * of every memory and mutable global the module defines (_instrument.ts exports them all, the
 * private ones too, such as Rust's `__stack_pointer`). After each job, however it ended (a trap,
 * an interrupt, a host fault included), {@linkcode RunnableInstance.reset} writes the snapshot
 * back; the worker calls it once the job is answered, so the caller does not wait for it. When
 * the instrumentation tracks the module's writes, only the 4 KiB chunks written since the last
 * reset are restored (the module's stores and the host's own writes mark them); else every byte.
 * A memory that grew keeps its pages (memories cannot shrink), but the size the module sees is
 * restored with the globals and the pages beyond the snapshot are zero again. Without tracking,
 * `reset` makes a successor instead when a memory grew more than {@linkcode MAX_SPARE_PAGES} past
 * the snapshot (zeroing them after every job would cost more than a new instance). It always
 * does when there is no snapshot: the module is not resettable (it changes tables or drops
 * segments, which the snapshot does not hold), has a `v128` mutable global, or its start
 * function failed. A successor is a new instance, given the snapshot when it holds only numbers
 * (its start function does not run again), else started afresh by the next job.
 *
 * Host functions (module `env`, every parameter i32, the job's `ident` last; each also as
 * `<name>_swift`, the same function: Swift passes two more i32s, ignored). A byte-returning call
 * (`request_get_field`, `request_set_field`, `cache_get`, `get_secret_value`, `fetch_url`,
 * `graphql_query`, `get_static_file`, `db_exec`) puts its value or error message in the job's
 * one pending-result slot and returns its size, minus the size of an error message, or -1 for an
 * unknown failure (or an uncollected earlier result); `get_ffi_result(ptr)` copies it out
 * (`request_set_field` answers an empty value on success, as Reactr). The cache, fetch,
 * GraphQL, static-file and database calls go to the pool on the main thread, the worker blocked
 * in `Atomics.wait` until it answers (_job_channel.ts). `add_ffi_var` adds a variable that the
 * job's next `graphql_query` or `db_exec` uses up. Every pointer and size is checked against the
 * memory: a bad one fails the job ("... passed a pointer outside its memory"), and the next job
 * runs as usual. `return_abort` and `proc_exit` end the job at once (`JobState.final`), except
 * `proc_exit(0)` during initialisation, which ends only the start function. A failing call's
 * message names the function without `_swift`.
 *
 * @module
 */

import {
  CHUNK_SHIFT,
  DIRTY_EXPORT,
  GLOBAL_EXPORT_PREFIX,
  INTERRUPT_EXPORT,
  INTERRUPTED,
  MAX_STORE_BYTES,
  MEMORY_EXPORT_PREFIX,
  START_EXPORT,
} from "./_instrument.ts";
import type { JobLog, RunnableSpec } from "./_protocol.ts";
import { type ByteAllocator, copyBytes } from "../wire/mod.ts";
import { type CallOutcome, decodeReply, messageOf, replyError } from "./_call_reply.ts";
import { encodeCacheCall } from "./_cache_call.ts";
import { encodeDatabaseCall } from "./_database_call.ts";
import { encodeFetchCall, MAX_FETCH_TIMEOUT_MS } from "./_fetch_call.ts";
import { encodeGraphqlCall } from "./_graphql_call.ts";
import { INPUT_ERROR_CODE } from "./_input_call.ts";
import { CALL_TIMEOUT_MS, copyFromShared, STREAMED_BODY } from "./_job_channel.ts";
import { FIELD_BODY, FIELD_META, requestField, setRequestField } from "./_request_field.ts";
import { encodeStaticFileCall } from "./_static_file_call.ts";
import type { QueryVariable } from "./host_services.ts";
import { WASI_FUNCTIONS, wasiImports } from "./_wasi.ts";
import type { RequestInfo, RunResult } from "./runnable.ts";

/** Most `log_msg` calls kept per job; the rest are counted. */
export const MAX_LOG_RECORDS = 100;
/** Most bytes of log messages kept per job. */
export const MAX_LOG_BYTES = 64 * 1024;
/** Most response headers (`resp_set_header`) and `add_ffi_var` variables per job. */
export const MAX_JOB_ENTRIES = 100;
/** Most bytes of a header's or variable's name and value. */
export const MAX_ENTRY_BYTES = 8 * 1024;

const WASM_PAGE = 65536;
/**
 * Most pages a memory may have beyond its snapshot for the instance to be reset in place: zeroing
 * 16 pages (1 MiB) costs about as much as a new instance.
 */
export const MAX_SPARE_PAGES = 16;
const LEVEL_WARN = 2;
/** `env` functions the host implements; each also as `<name>_swift` (two more ignored i32s). */
const ENV_FUNCTIONS = [
  "return_result",
  "return_error",
  "return_abort",
  "log_msg",
  "request_get_field",
  "get_ffi_result",
  "add_ffi_var",
  "cache_set",
  "cache_get",
  "resp_set_header",
  "get_secret_value",
  "fetch_url",
  "graphql_query",
  "request_set_field",
  "get_static_file",
  "db_exec",
];
/**
 * How long a worker waits for the reply of a call the pool answers asynchronously (a fetch, a
 * query, a file): the pool answers within the fetch's time limit (at most MAX_FETCH_TIMEOUT_MS)
 * or the job's, or stops the job; the margin covers reading the body.
 */
const SLOW_CALL_WAIT_MS = MAX_FETCH_TIMEOUT_MS + CALL_TIMEOUT_MS;
const SWIFT_SUFFIX = "_swift";
/** Exports Reactr calls once after instantiation, in this order, if the module has them. */
const WASI_START_EXPORT = "_start";
const INIT_EXPORT = "init";
/** Import modules whose functions the host provides, or stubs that fail the job. */
export const IMPORT_MODULES: readonly string[] = ["env", "wasi_snapshot_preview1"];
const decoder = new TextDecoder();
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * Whether the host implements function `name` of import module `from` (else a call fails the
 * job, naming it).
 */
export function isSupportedImport(from: string, name: string): boolean {
  if (from === "wasi_snapshot_preview1") return WASI_FUNCTIONS.includes(name);
  if (from !== "env") return false;
  const base = name.endsWith(SWIFT_SUFFIX) ? name.slice(0, -SWIFT_SUFFIX.length) : name;
  return ENV_FUNCTIONS.includes(base);
}

/** What a job needs beyond its request. */
export interface JobStateOptions {
  /** Someone reads the job's logs (default true). */
  keepsLogs?: boolean;
  /** Makes the array the output is copied into (default: a new Uint8Array). */
  allocOutput?: ByteAllocator;
  /**
   * Makes a synchronous call to the pool (the cache, fetch), waiting at most `timeoutMs` for the
   * reply (a default if omitted); without it the cache and fetch are unavailable.
   */
  hostCall?: (call: Uint8Array, timeoutMs?: number) => Uint8Array;
  /**
   * Asks the pool for the next chunk of a streamed input (_input_call.ts) and waits for the
   * reply: a view, valid until the next call. Only for a job whose input is streamed.
   */
  readInput?: () => Uint8Array;
}

const idents = new Uint32Array(256);
let nextIdent = idents.length;

/** A random non-negative int32: a job's `ident`, as Reactr picks it. */
export function randomIdent(): number {
  if (nextIdent === idents.length) {
    crypto.getRandomValues(idents);
    nextIdent = 0;
  }
  return idents[nextIdent++]! >>> 1;
}

/** The per-job slot that host calls carrying the job's `ident` write into. */
export class JobState {
  readonly ident: number;
  /** The job's request; `request_set_field` changes it (for this job only). */
  readonly request: RequestInfo | undefined;
  /** The last `return_result` / `return_error` of this job. */
  result: RunResult | undefined;
  /** The value or error message of the last byte-returning call, until `get_ffi_result`. */
  pendingFfi: Uint8Array | undefined;
  /** Set when the host refuses a call; the job then fails whatever the module does next. */
  failure: string | undefined;
  /** The job's answer, set by `return_abort` or `proc_exit`: nothing the module does changes it. */
  final: RunResult | undefined;
  /** Headers set by `resp_set_header`, returned with an ok result. */
  headers: Record<string, string> | undefined;
  /** Variables added by `add_ffi_var`, in order, until a query uses them up. */
  ffiVars: QueryVariable[] = [];
  readonly hostCall: ((call: Uint8Array, timeoutMs?: number) => Uint8Array) | undefined;
  readonly readInput: (() => Uint8Array) | undefined;
  readonly logs: JobLog[] = [];
  droppedLogs = 0;
  /** Whether anyone reads this job's logs; if not, `log_msg` costs no decoding. */
  readonly keepsLogs: boolean;
  readonly allocOutput: ByteAllocator | undefined;
  #logBytes = 0;

  constructor(ident: number, request: RequestInfo | undefined, options: JobStateOptions = {}) {
    this.ident = ident;
    this.request = request;
    this.keepsLogs = options.keepsLogs ?? true;
    this.allocOutput = options.allocOutput;
    this.hostCall = options.hostCall;
    this.readInput = options.readInput;
  }

  log(level: number, message: string): void {
    if (!this.keepsLogs) return;
    if (this.logs.length >= MAX_LOG_RECORDS || this.#logBytes + message.length > MAX_LOG_BYTES) {
      this.droppedLogs++;
      return;
    }
    this.#logBytes += message.length;
    this.logs.push({ level, message });
  }
}

/**
 * The state every job of an instance starts from: the contents of the module's memories and the
 * values of its mutable globals after initialisation, in the order of the instance's exports.
 */
export interface Snapshot {
  readonly memories: readonly Uint8Array[];
  readonly globals: readonly unknown[];
  /** No value is a reference: the snapshot fits any instance of the module, not just its own. */
  readonly portable: boolean;
}

interface AbiExports {
  allocate(size: number): number;
  deallocate(ptr: number, size: number): void;
  run_e(ptr: number, size: number, ident: number): void;
  memory: WebAssembly.Memory;
}

/** Thrown through the module when the host refuses a call (the job's `failure` says why). */
class HostFault extends Error {
  override name = "HostFault";
}

/** Thrown through the module to end the job (`return_abort`, `proc_exit`: see `final`). */
class JobEnd extends Error {
  override name = "JobEnd";
}

/**
 * Where a job's streamed input, which is its request's body, lies in the instance's memory, and
 * what tells whether the module has written over it since: the interior chunks `from..to` are
 * marked {@linkcode HOST_MARK} in the byte map of written chunks (a store of the module marks 1);
 * `head` and `tail` are copies of the input's bytes around them (a store starting in the chunk
 * before `from` may write a few bytes into it unmarked, and the edge chunks hold other data the
 * module may write). A small input is kept whole in `head`.
 */
interface StreamedBody {
  readonly ptr: number;
  readonly size: number;
  readonly head: Uint8Array;
  readonly tail: Uint8Array;
  readonly from: number;
  readonly to: number;
}

/** How the host marks the chunks of a streamed body in the byte map (the module's stores: 1). */
const HOST_MARK = 2;
/** A streamed body up to this size is copied whole for `request_get_field` (a few chunks). */
const SMALL_BODY = 4 << CHUNK_SHIFT;

/** Thrown through a start function by `proc_exit(0)`: initialisation ended cleanly. */
class CleanExit extends Error {
  override name = "CleanExit";
}

/** A runnable's instance in one worker. */
export class RunnableInstance {
  readonly #spec: RunnableSpec;
  readonly #module: WebAssembly.Module;
  readonly #exports: AbiExports;
  readonly #interrupt: Int32Array;
  readonly #start: (() => void) | undefined;
  /** The module's memories and mutable globals, as the instrumentation exports them. */
  readonly #memories: WebAssembly.Memory[] = [];
  readonly #globals: WebAssembly.Global[] = [];
  /** One byte per 4 KiB chunk of the memory, set when the chunk is written; if tracked. */
  readonly #dirty: Uint8Array | undefined;
  #started = false;
  /** Set while the start functions run: `proc_exit(0)` then ends only the one running. */
  #initializing = false;
  /** Taken once the start function returned, if the module is resettable. */
  #snapshot: Snapshot | undefined;
  #job: JobState | undefined;
  /** The running job's streamed body, if its request reads it from memory. */
  #body: StreamedBody | undefined;
  /** Logs what remains of the job's unfinished fd_write lines. */
  #flushWasi: () => void = () => {};

  /**
   * Instantiates the module; its start function (if any) runs with the first job, unless a
   * snapshot is given: then the instance starts in that state.
   *
   * @param spec the runnable
   * @param module its instrumented module
   * @param snapshot a portable snapshot of another instance of the module
   * @throws {WebAssembly.LinkError} the module needs an import the host does not provide
   * @throws {RangeError} the memory cannot grow to the snapshot's size
   */
  constructor(spec: RunnableSpec, module: WebAssembly.Module, snapshot?: Snapshot) {
    this.#spec = spec;
    this.#module = module;
    const instance = new WebAssembly.Instance(module, this.#imports(module));
    const exports = instance.exports as unknown as AbiExports & Record<string, unknown>;
    this.#exports = exports;
    this.#interrupt = new Int32Array((exports[INTERRUPT_EXPORT] as WebAssembly.Memory).buffer);
    // After the start section, Reactr (rwasm's instance builders) calls the `_start` export (the
    // runtime and main of TinyGo, Grain and SwiftWasm modules: TinyGo's main registers the
    // runnable) and then `init` (where a Swift runnable calls Set(runnable:)), each if exported.
    const starts = [exports[START_EXPORT], exports[WASI_START_EXPORT], exports[INIT_EXPORT]]
      .filter((f): f is () => void => typeof f === "function");
    this.#start = starts.length === 0 ? undefined : () => {
      this.#initializing = true;
      try {
        for (const start of starts) {
          try {
            start();
          } catch (error) {
            // proc_exit(0) ends a WASI `_start` that returns through exit (TinyGo, Grain): the
            // runtime is up, which is all initialisation asks.
            if (!(error instanceof CleanExit)) throw error;
          }
        }
      } finally {
        this.#initializing = false;
      }
    };
    const dirty = exports[DIRTY_EXPORT] as WebAssembly.Memory | undefined;
    this.#dirty = dirty && new Uint8Array(dirty.buffer);
    for (const [name, value] of Object.entries(exports)) {
      if (name.startsWith(MEMORY_EXPORT_PREFIX)) this.#memories.push(value as WebAssembly.Memory);
      if (name.startsWith(GLOBAL_EXPORT_PREFIX)) this.#globals.push(value as WebAssembly.Global);
    }
    if (snapshot) {
      this.#memories.forEach((memory, i) => {
        const missing = snapshot.memories[i]!.length - memory.buffer.byteLength;
        if (missing > 0) memory.grow(missing / WASM_PAGE);
      });
      this.#restore(snapshot);
      this.#snapshot = snapshot;
      this.#started = true;
    }
  }

  /** The word the pool writes {@linkcode INTERRUPTED} into to stop this instance's job. */
  get interruptBuffer(): SharedArrayBuffer {
    return this.#interrupt.buffer as SharedArrayBuffer;
  }

  /**
   * Makes the instance ready for the next job, in the state after initialisation: restores the
   * snapshot in place, or returns a successor (see the module doc).
   *
   * @returns this instance, a new one, or undefined if a new one could not be made (the next
   *   job tries again and reports why)
   */
  reset(): RunnableInstance | undefined {
    const snapshot = this.#snapshot;
    if (snapshot && this.#dirty) {
      this.#restoreWritten(snapshot);
      return this;
    }
    if (snapshot && this.#memories.every((memory, i) => fits(memory, snapshot.memories[i]!))) {
      this.#restore(snapshot);
      return this;
    }
    try {
      return new RunnableInstance(
        this.#spec,
        this.#module,
        snapshot?.portable ? snapshot : undefined,
      );
    } catch {
      return undefined;
    }
  }

  /**
   * Runs one job; never throws.
   *
   * @param jobId the pool's id of the job, written into the interrupt word
   * @param job the job's state
   * @param input the input, or the size of a streamed input that `job.readInput` pulls
   * @returns the job's result
   */
  run(jobId: number, job: JobState, input: Uint8Array | number): RunResult {
    this.#job = job;
    Atomics.store(this.#interrupt, 0, jobId);
    let trap: { error: unknown } | undefined;
    try {
      if (!this.#started) {
        this.#started = true;
        this.#start?.();
        if (this.#spec.resettable) this.#snapshot = this.#capture();
        this.#dirty?.fill(0);
      }
      if (typeof input === "number") {
        const ptr = this.#exports.allocate(input);
        this.#pull(job, ptr, input);
        this.#exports.run_e(ptr, input, job.ident);
        if (job.failure === undefined) this.#exports.deallocate(ptr, input);
      } else {
        const ptr = this.#exports.allocate(input.length);
        this.#bytes(ptr, input.length, "allocate").set(input);
        this.#written(ptr, input.length);
        this.#exports.run_e(ptr, input.length, job.ident);
        if (job.failure === undefined) this.#exports.deallocate(ptr, input.length);
      }
    } catch (error) {
      trap = { error };
    }
    this.#body = undefined;
    const interrupted = Atomics.exchange(this.#interrupt, 0, 0) === INTERRUPTED;
    this.#flushWasi();
    this.#job = undefined;

    const name = this.#spec.name;
    if (interrupted) return fail(`runnable "${name}" was interrupted`);
    // Even if the module caught the host's exception and carried on.
    if (job.failure !== undefined) return fail(job.failure);
    if (job.final !== undefined) return job.final;
    if (trap !== undefined) {
      // A trap after return_error reports the module's own error.
      return job.result?.ok === false
        ? job.result
        : fail(`runnable "${name}" trapped: ${describe(trap.error)}${this.#memoryNote()}`);
    }
    return withHeaders(job);
  }

  /**
   * Writes a streamed input at `ptr`, chunk by chunk as the pool hands them over, straight from
   * the channel into memory (no module code runs meanwhile: the memory cannot move), then asks
   * for the end. Ends the job (`final`, code {@linkcode INPUT_ERROR_CODE}) if the input is
   * shorter or longer than `size` or the pool answers an error.
   */
  #pull(job: JobState, ptr: number, size: number): void {
    const target = this.#bytes(ptr, size, "allocate");
    const end = (code: number, message: string): never => {
      job.final = { ok: false, code, message };
      throw new JobEnd("input");
    };
    if (!job.readInput) end(500, "this job's streamed input cannot be read (no channel)");
    let offset = 0;
    for (;;) {
      let reply: Uint8Array;
      try {
        reply = job.readInput!();
      } catch (error) {
        return end(500, `runnable "${this.#spec.name}": reading its input: ${messageOf(error)}`);
      }
      const error = replyError(reply);
      if (error !== undefined) end(INPUT_ERROR_CODE, error);
      const length = reply.length - 1;
      if (length === 0) break;
      if (length > size - offset) {
        end(
          INPUT_ERROR_CODE,
          `the request body was longer than its announced size of ${size} bytes`,
        );
      }
      copyFromShared(target, offset, reply.subarray(1));
      offset += length;
    }
    if (offset < size) {
      end(
        INPUT_ERROR_CODE,
        `the request body was shorter than its announced size: it ended after ${offset} of ` +
          `${size} bytes`,
      );
    }
    this.#written(ptr, size);
    if (job.request?.body === STREAMED_BODY) this.#keepBody(job, ptr, size);
  }

  /**
   * Prepares `request_get_field` to read the streamed body from memory. Without write tracking
   * nothing would tell whether the module wrote over it: the body is copied then (a second copy,
   * only for such modules that read their request).
   */
  #keepBody(job: JobState, ptr: number, size: number): void {
    const dirty = this.#dirty;
    const memory = this.#bytes(ptr, size, "allocate");
    if (!dirty) {
      job.request!.body = memory.slice();
      return;
    }
    const chunk = 1 << CHUNK_SHIFT;
    const from = Math.ceil(ptr / chunk);
    const to = Math.floor((ptr + size) / chunk);
    if (size <= SMALL_BODY || to - from < 2) {
      this.#body = { ptr, size, head: memory.slice(), tail: EMPTY, from: 0, to: 0 };
      return;
    }
    const headEnd = from * chunk + MAX_STORE_BYTES - 1 - ptr;
    const tailStart = to * chunk - ptr;
    this.#body = {
      ptr,
      size,
      head: memory.slice(0, headEnd),
      tail: memory.slice(tailStart),
      from,
      to,
    };
    dirty.fill(HOST_MARK, from, to);
  }

  /**
   * The running job's streamed body: a view of the memory (valid until the module's code runs
   * again), or why it cannot be read.
   */
  #streamedBody(): Uint8Array | string {
    const body = this.#body;
    const name = this.#spec.name;
    if (!body) return `runnable "${name}": the request body is not available`;
    const { ptr, size, head, tail, from, to } = body;
    const view = new Uint8Array(this.#exports.memory.buffer, ptr, size);
    if (tail === EMPTY && from === to) return head;
    const dirty = this.#dirty!;
    let same = true;
    for (let chunk = from; chunk < to && same; chunk++) same = dirty[chunk] === HOST_MARK;
    for (let i = 0; i < head.length && same; i++) same = view[i] === head[i];
    const at = size - tail.length;
    for (let i = 0; i < tail.length && same; i++) same = view[at + i] === tail[i];
    if (same) return view;
    return `runnable "${name}": the request body is no longer available: the runnable wrote over ` +
      "its input, where the host keeps a streamed body; read the body before changing the input";
  }

  /** Reads a field of a request whose body is the streamed input, as it lies in memory. */
  #streamedGet(request: RequestInfo, fieldType: number, key: string): CallOutcome {
    const body = this.#streamedBody();
    if (typeof body === "string") return { error: body };
    return requestField({ ...request, body }, fieldType, key);
  }

  /**
   * Sets a field of a request whose body is the streamed input, as it lies in memory: a new
   * body replaces it (for this job, as every `request_set_field`).
   */
  #streamedSet(
    request: RequestInfo,
    fieldType: number,
    key: string,
    value: string,
  ): string | undefined {
    const body = this.#streamedBody();
    if (typeof body === "string") return body;
    const copy = { ...request, body };
    const error = setRequestField(copy, fieldType, key, value);
    if (error === undefined) request.body = copy.body;
    return error;
  }

  /** The state to reset to; undefined if a global's value cannot be read (v128). */
  #capture(): Snapshot | undefined {
    const memories = this.#memories.map((memory) => new Uint8Array(memory.buffer.slice(0)));
    const globals: unknown[] = [];
    let portable = true;
    for (const global of this.#globals) {
      let value: unknown;
      try {
        value = global.value;
      } catch {
        return undefined; // the JS API refuses v128 values
      }
      if (typeof value !== "number" && typeof value !== "bigint") portable = false;
      globals.push(value);
    }
    return { memories, globals, portable };
  }

  /** Marks the chunks of bytes `ptr..ptr+size` the host wrote. */
  #written(ptr: number, size: number): void {
    const dirty = this.#dirty;
    if (!dirty || size === 0) return;
    const start = ptr >>> 0;
    dirty.fill(1, start >>> CHUNK_SHIFT, ((start + size - 1) >>> CHUNK_SHIFT) + 1);
  }

  /** Restores the chunks written since the last reset (the one memory is tracked), and globals. */
  #restoreWritten(snapshot: Snapshot): void {
    const dirty = this.#dirty!;
    const memory = new Uint8Array(this.#memories[0]!.buffer);
    const saved = snapshot.memories[0]!;
    const chunks = memory.length >>> CHUNK_SHIFT;
    // Four chunks at a time: the map is mostly zero.
    const words = new Uint32Array(dirty.buffer, 0, (chunks + 3) >>> 2);
    for (let w = 0; w < words.length; w++) {
      if (words[w] === 0) continue;
      for (let chunk = w << 2; chunk < (w << 2) + 4 && chunk < chunks; chunk++) {
        if (dirty[chunk] === 0) continue;
        const start = chunk << CHUNK_SHIFT;
        // A store that starts in this chunk may write a few bytes of the next.
        const end = Math.min(start + (1 << CHUNK_SHIFT) + MAX_STORE_BYTES - 1, memory.length);
        const copied = Math.min(end, saved.length);
        if (copied > start) memory.set(saved.subarray(start, copied), start);
        if (end > copied) memory.fill(0, Math.max(start, copied), end);
      }
      words[w] = 0;
    }
    for (let i = 0; i < this.#globals.length; i++) this.#globals[i]!.value = snapshot.globals[i];
  }

  /** Writes the snapshot into memories at least its size, and zeroes the rest. */
  #restore(snapshot: Snapshot): void {
    for (let i = 0; i < this.#memories.length; i++) {
      const memory = new Uint8Array(this.#memories[i]!.buffer);
      const saved = snapshot.memories[i]!;
      memory.set(saved);
      if (memory.length > saved.length) memory.fill(0, saved.length);
    }
    for (let i = 0; i < this.#globals.length; i++) this.#globals[i]!.value = snapshot.globals[i];
  }

  #imports(module: WebAssembly.Module): WebAssembly.Imports {
    const env: Record<string, WebAssembly.ImportValue> = {
      return_result: (ptr: number, size: number, ident: number) => {
        const job = this.#jobFor(ident, "return_result");
        if (!job) return;
        const bytes = this.#bytes(ptr, size, "return_result");
        job.result = { ok: true, output: copyBytes(bytes, job.allocOutput) };
      },
      return_error: (code: number, ptr: number, size: number, ident: number) => {
        const job = this.#jobFor(ident, "return_error");
        if (job) job.result = { ok: false, code, message: this.#text(ptr, size, "return_error") };
      },
      // AssemblyScript's `abort`, which never returns: the job ends here.
      return_abort: (
        msgPtr: number,
        msgSize: number,
        filePtr: number,
        fileSize: number,
        line: number,
        column: number,
        ident: number,
      ) => {
        const job = this.#jobFor(ident, "return_abort");
        if (!job) return;
        const message = this.#text(msgPtr, msgSize, "return_abort");
        const file = this.#text(filePtr, fileSize, "return_abort");
        job.final = fail(`abort: ${message} at ${file}:${line}:${column}`);
        throw new JobEnd("return_abort");
      },
      log_msg: (ptr: number, size: number, level: number, ident: number) => {
        const job = this.#jobFor(ident, "log_msg");
        if (!job) return;
        // Bounds-checked even when nobody reads the logs.
        const bytes = this.#bytes(ptr, size, "log_msg");
        if (job.keepsLogs) job.log(level, decoder.decode(bytes));
      },
      request_get_field: (fieldType: number, keyPtr: number, keySize: number, ident: number) => {
        const job = this.#jobFor(ident, "request_get_field");
        if (!job) return -1;
        const key = this.#text(keyPtr, keySize, "request_get_field");
        const request = job.request;
        let field: CallOutcome;
        if (!request) field = { error: "no request is attached to this job" };
        else if (request.body !== STREAMED_BODY) field = requestField(request, fieldType, key);
        else if (fieldType === FIELD_META && key === "body") {
          // Copied by get_ffi_result from where it lies, if unchanged.
          const body = this.#streamedBody();
          field = typeof body === "string" ? { error: body } : { value: STREAMED_BODY };
        } else if (fieldType === FIELD_BODY) {
          field = this.#streamedGet(request, fieldType, key);
        } else field = requestField(request, fieldType, key);
        return this.#ffiResult(job, "request_get_field", field);
      },
      get_ffi_result: (ptr: number, ident: number) => {
        const job = this.#jobFor(ident, "get_ffi_result");
        if (!job || job.pendingFfi === undefined) return -1;
        const data = job.pendingFfi;
        job.pendingFfi = undefined;
        if (data === STREAMED_BODY) return this.#copyBody(ptr);
        this.#bytes(ptr, data.length, "get_ffi_result").set(data);
        this.#written(ptr, data.length);
        return 0;
      },
      // Variables for the job's next graphql_query or db_exec, which uses them up (Reactr's
      // UseVars); kept in order, a repeated name too (db_exec's are positional).
      add_ffi_var: (
        namePtr: number,
        nameSize: number,
        valPtr: number,
        valSize: number,
        ident: number,
      ) => {
        const job = this.#jobFor(ident, "add_ffi_var");
        if (!job) return -1;
        const name = this.#text(namePtr, nameSize, "add_ffi_var");
        const value = this.#text(valPtr, valSize, "add_ffi_var");
        if (!this.#roomFor(job, false, job.ffiVars.length, nameSize + valSize, "add_ffi_var")) {
          return -1;
        }
        job.ffiVars.push({ name, value });
        return 0;
      },
      cache_set: (
        keyPtr: number,
        keySize: number,
        valPtr: number,
        valSize: number,
        ttlSeconds: number,
        ident: number,
      ) => {
        const job = this.#jobFor(ident, "cache_set");
        if (!job) return -1;
        const key = this.#bytes(keyPtr, keySize, "cache_set");
        const value = this.#bytes(valPtr, valSize, "cache_set");
        const reply = this.#cacheCall(job, encodeCacheCall(key, { value, ttlSeconds }));
        if ("error" in reply) {
          job.log(LEVEL_WARN, `env.cache_set: ${reply.error}`);
          return -1;
        }
        return 0;
      },
      cache_get: (keyPtr: number, keySize: number, ident: number) => {
        const job = this.#jobFor(ident, "cache_get");
        if (!job) return -1;
        const key = this.#bytes(keyPtr, keySize, "cache_get");
        return this.#ffiResult(job, "cache_get", this.#cacheCall(job, encodeCacheCall(key)));
      },
      resp_set_header: (
        keyPtr: number,
        keySize: number,
        valPtr: number,
        valSize: number,
        ident: number,
      ) => {
        const job = this.#jobFor(ident, "resp_set_header");
        if (!job) return;
        const name = this.#text(keyPtr, keySize, "resp_set_header");
        const value = this.#text(valPtr, valSize, "resp_set_header");
        const headers = job.headers ??= {};
        const known = Object.hasOwn(headers, name);
        const count = Object.keys(headers).length;
        if (this.#roomFor(job, known, count, keySize + valSize, "resp_set_header")) {
          headers[name] = value;
        }
      },
      get_secret_value: (keyPtr: number, keySize: number, ident: number) => {
        const job = this.#jobFor(ident, "get_secret_value");
        if (!job) return -1;
        const name = this.#text(keyPtr, keySize, "get_secret_value");
        const secrets = this.#spec.secrets;
        // Only names the runnable was given; never a value in a message.
        const field = secrets && Object.hasOwn(secrets, name)
          ? { value: encoder.encode(secrets[name]) }
          : { error: `no secret named ${JSON.stringify(name)} is allowed for this runnable` };
        return this.#ffiResult(job, "get_secret_value", field);
      },
      // Synchronous for the module; the pool runs the fetch on the main thread (_fetch_call.ts).
      fetch_url: (
        method: number,
        urlPtr: number,
        urlSize: number,
        bodyPtr: number,
        bodySize: number,
        ident: number,
      ) => {
        const job = this.#jobFor(ident, "fetch_url");
        if (!job) return -1;
        const url = this.#bytes(urlPtr, urlSize, "fetch_url");
        const body = this.#bytes(bodyPtr, bodySize, "fetch_url");
        const reply = !Number.isInteger(method) || method < 0 || method > 255
          ? { error: `unknown method ${method}; use 0 to 6 (GET, HEAD, ..., DELETE)` }
          : this.#poolCall(job, "fetch", () => encodeFetchCall(method, url, body));
        return this.#ffiResult(job, "fetch_url", reply);
      },
      // POSTs the query with the job's variables to the endpoint, under fetch_url's rules.
      graphql_query: (
        endpointPtr: number,
        endpointSize: number,
        queryPtr: number,
        querySize: number,
        ident: number,
      ) => {
        const job = this.#jobFor(ident, "graphql_query");
        if (!job) return -1;
        const endpoint = this.#text(endpointPtr, endpointSize, "graphql_query");
        const query = this.#text(queryPtr, querySize, "graphql_query");
        const variables = useVars(job);
        const reply = this.#poolCall(
          job,
          "GraphQL",
          () => encodeGraphqlCall(endpoint, query, variables),
        );
        return this.#ffiResult(job, "graphql_query", reply);
      },
      request_set_field: (
        fieldType: number,
        keyPtr: number,
        keySize: number,
        valPtr: number,
        valSize: number,
        ident: number,
      ) => {
        const job = this.#jobFor(ident, "request_set_field");
        if (!job) return -1;
        const key = this.#text(keyPtr, keySize, "request_set_field");
        const value = this.#text(valPtr, valSize, "request_set_field");
        const request = job.request;
        const error = !request
          ? "no request is attached to this job"
          : request.body === STREAMED_BODY && fieldType === FIELD_BODY
          ? this.#streamedSet(request, fieldType, key, value)
          : setRequestField(request, fieldType, key, value);
        // Reactr answers an empty result on success, which the SDKs collect.
        return this.#ffiResult(job, "request_set_field", error ? { error } : { value: EMPTY });
      },
      get_static_file: (namePtr: number, nameSize: number, ident: number) => {
        const job = this.#jobFor(ident, "get_static_file");
        if (!job) return -1;
        const name = this.#bytes(namePtr, nameSize, "get_static_file");
        const reply = this.#poolCall(job, "static file", () => encodeStaticFileCall(name));
        return this.#ffiResult(job, "get_static_file", reply);
      },
      db_exec: (queryType: number, namePtr: number, nameSize: number, ident: number) => {
        const job = this.#jobFor(ident, "db_exec");
        if (!job) return -1;
        const name = this.#text(namePtr, nameSize, "db_exec");
        const variables = useVars(job);
        const reply = this.#poolCall(
          job,
          "database",
          () => encodeDatabaseCall(queryType, name, variables),
        );
        return this.#ffiResult(job, "db_exec", reply);
      },
    };
    for (const name of ENV_FUNCTIONS) env[name + SWIFT_SUFFIX] = env[name]!;
    const wasi = wasiImports({
      bytes: (ptr, size, fn) => this.#bytes(ptr, size, `wasi_snapshot_preview1.${fn}`),
      written: (ptr, size) => this.#written(ptr, size),
      log: (level, message) => this.#job?.log(level, message),
      exit: (code) => {
        if (this.#initializing && code === 0) throw new CleanExit("proc_exit(0)");
        const job = this.#job;
        if (job) job.final = code === 0 ? withHeaders(job) : fail(`proc_exit(${code})`);
        throw new JobEnd("proc_exit");
      },
    });
    this.#flushWasi = wasi.flush;
    const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {
      env,
      wasi_snapshot_preview1: wasi.imports,
    };
    for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
      if (kind !== "function" || !IMPORT_MODULES.includes(from)) continue;
      if (isSupportedImport(from, name)) continue;
      // Present so the module instantiates; a call fails the job.
      imports[from]![name] = () => {
        throw this.#fault(`host function ${from}.${name} is not supported yet`);
      };
    }
    return imports;
  }

  /**
   * Puts the value or error of a byte-returning call in the job's pending-result slot.
   *
   * @returns the value's size, minus the error message's size, or -1 when the slot is taken
   */
  #ffiResult(job: JobState, fn: string, result: CallOutcome): number {
    if (job.pendingFfi !== undefined) {
      // Reactr refuses a second result before the first is collected.
      job.log(LEVEL_WARN, `env.${fn}: the previous result was never collected`);
      return -1;
    }
    if ("error" in result) {
      // A negative size: the length of an error message (Reactr's FFIResult.FFISize); a
      // message is longer than one byte, so as not to read as -1, an unknown failure.
      job.pendingFfi = encoder.encode(result.error.padEnd(2, "."));
      return -job.pendingFfi.length;
    }
    job.pendingFfi = result.value;
    return result.value === STREAMED_BODY ? this.#body!.size : result.value.length;
  }

  /** `get_ffi_result` of a streamed body: copied within the memory, if still unchanged. */
  #copyBody(ptr: number): number {
    const body = this.#streamedBody();
    if (typeof body === "string") throw this.#fault(`get_ffi_result: ${body}`);
    const size = body.length;
    const target = this.#bytes(ptr, size, "get_ffi_result");
    if (body.buffer === target.buffer) {
      // Within the memory: no temporary copy of the body.
      new Uint8Array(target.buffer).copyWithin(ptr >>> 0, body.byteOffset, body.byteOffset + size);
    } else target.set(body);
    this.#written(ptr, size);
    return 0;
  }

  /** Calls the pool's cache; errors come back as a message for the module. */
  #cacheCall(job: JobState, call: Uint8Array): CallOutcome {
    if (!job.hostCall) return { error: "no cache is available to this job" };
    try {
      return decodeReply(job.hostCall(call));
    } catch (error) {
      return { error: messageOf(error) };
    }
  }

  /**
   * Makes a call the pool may answer asynchronously, the worker blocked meanwhile; errors come
   * back as a message for the module.
   */
  #poolCall(job: JobState, what: string, encode: () => Uint8Array): CallOutcome {
    if (!job.hostCall) return { error: `no ${what} host call is available to this job` };
    try {
      return decodeReply(job.hostCall(encode(), SLOW_CALL_WAIT_MS));
    } catch (error) {
      return { error: messageOf(error) };
    }
  }

  /** Whether one more header or variable fits the job's bounds; if not, a warning says so. */
  #roomFor(job: JobState, replaces: boolean, count: number, size: number, fn: string): boolean {
    if (size <= MAX_ENTRY_BYTES && (replaces || count < MAX_JOB_ENTRIES)) return true;
    job.log(
      LEVEL_WARN,
      `env.${fn}: ignored; at most ${MAX_JOB_ENTRIES} entries of ${MAX_ENTRY_BYTES} bytes per job`,
    );
    return false;
  }

  /** The job whose `ident` this is; other idents get nothing (one job's slots are its own). */
  #jobFor(ident: number, fn: string): JobState | undefined {
    const job = this.#job;
    if (job?.ident === ident) return job;
    job?.log(LEVEL_WARN, `env.${fn} called with ident ${ident}, not the running job's; ignored`);
    return undefined;
  }

  /** A bounds-checked view of the module's memory; the job fails if it is out of bounds. */
  #bytes(ptr: number, size: number, fn: string): Uint8Array {
    const buffer = this.#exports.memory.buffer;
    const start = ptr >>> 0; // Wasm pointers are unsigned i32
    if (size < 0 || start + size > buffer.byteLength) {
      throw this.#fault(
        `${fn} passed a pointer outside its memory: ${size} bytes at ${start}, in a ` +
          `${buffer.byteLength}-byte memory`,
      );
    }
    return new Uint8Array(buffer, start, size);
  }

  #text(ptr: number, size: number, fn: string): string {
    return decoder.decode(this.#bytes(ptr, size, fn));
  }

  #fault(message: string): HostFault {
    const full = `runnable "${this.#spec.name}": ${message}`;
    if (this.#job) this.#job.failure ??= full;
    return new HostFault(full);
  }

  #memoryNote(): string {
    const pages = this.#exports.memory.buffer.byteLength / WASM_PAGE;
    return pages >= this.#spec.maxMemoryPages
      ? ` (its memory is at the limit of ${this.#spec.maxMemoryPages} pages)`
      : "";
  }
}

/** The job's `add_ffi_var` variables, which a query uses up. */
function useVars(job: JobState): QueryVariable[] {
  const variables = job.ffiVars;
  job.ffiVars = [];
  return variables;
}

/** Whether `memory` can take `saved` back in place. */
function fits(memory: WebAssembly.Memory, saved: Uint8Array): boolean {
  const spare = memory.buffer.byteLength - saved.length;
  return spare >= 0 && spare <= MAX_SPARE_PAGES * WASM_PAGE;
}

/** The job's result (Reactr answers a job that returned nothing with an empty one) and headers. */
function withHeaders(job: JobState): RunResult {
  const result = job.result ?? { ok: true, output: new Uint8Array(0) };
  return result.ok && job.headers ? { ...result, headers: job.headers } : result;
}

function fail(message: string): RunResult {
  return { ok: false, code: 500, message };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
