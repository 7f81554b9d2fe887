/**
 * One instance of a runnable inside a worker, and the host functions of Suborbital's runnable
 * ABI it imports (Reactr semantics: `api/*.go` of suborbital/reactr and e2core).
 *
 * A job: `ptr = allocate(len)`, write the input at `ptr`, `run_e(ptr, len, ident)`, collect
 * whatever `return_result` / `return_error` the module called with that `ident`, then
 * `deallocate(ptr, len)`. The instance is reused for the next job unless the job ended abnormally
 * (trap, interrupt, host fault), in which case its state is suspect and it is dropped.
 *
 * @module
 */

import { INTERRUPT_EXPORT, INTERRUPTED, START_EXPORT } from "./_instrument.ts";
import type { JobLog, RunnableSpec } from "./_protocol.ts";
import { requestField } from "./_request_field.ts";
import type { RequestInfo, RunResult } from "./runnable.ts";

/** Most `log_msg` calls kept per job; the rest are counted. */
export const MAX_LOG_RECORDS = 100;
/** Most bytes of log messages kept per job. */
export const MAX_LOG_BYTES = 64 * 1024;

const WASM_PAGE = 65536;
const LEVEL_WARN = 2;
const SUPPORTED = [
  "return_result",
  "return_error",
  "log_msg",
  "request_get_field",
  "get_ffi_result",
];
const STUBBED_MODULES = ["env", "wasi_snapshot_preview1"];
const decoder = new TextDecoder();

/** The per-job slot that host calls carrying the job's `ident` write into. */
export class JobState {
  readonly ident: number;
  readonly request: RequestInfo | undefined;
  /** The last `return_result` / `return_error` of this job. */
  result: RunResult | undefined;
  /** The value or error message of the last `request_get_field`, until `get_ffi_result`. */
  pendingFfi: Uint8Array | undefined;
  /** Set when the host refuses a call; the job then fails whatever the module does next. */
  failure: string | undefined;
  readonly logs: JobLog[] = [];
  droppedLogs = 0;
  /** Whether anyone reads this job's logs; if not, `log_msg` costs no decoding. */
  readonly keepsLogs: boolean;
  #logBytes = 0;

  constructor(ident: number, request: RequestInfo | undefined, keepsLogs = true) {
    this.ident = ident;
    this.request = request;
    this.keepsLogs = keepsLogs;
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

/** How a job ended, and whether the instance may serve the next one. */
export interface JobOutcome {
  result: RunResult;
  reusable: boolean;
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

/** A runnable's instance in one worker. */
export class RunnableInstance {
  readonly #spec: RunnableSpec;
  readonly #exports: AbiExports;
  readonly #interrupt: Int32Array;
  readonly #start: (() => void) | undefined;
  #started = false;
  #job: JobState | undefined;

  /**
   * Instantiates the module; its start function (if any) runs with the first job.
   *
   * @throws {WebAssembly.LinkError} the module needs an import the host does not provide
   */
  constructor(spec: RunnableSpec, module: WebAssembly.Module) {
    this.#spec = spec;
    const instance = new WebAssembly.Instance(module, this.#imports(module));
    const exports = instance.exports as unknown as AbiExports & Record<string, unknown>;
    this.#exports = exports;
    this.#interrupt = new Int32Array((exports[INTERRUPT_EXPORT] as WebAssembly.Memory).buffer);
    this.#start = exports[START_EXPORT] as (() => void) | undefined;
  }

  /** The word the pool writes {@linkcode INTERRUPTED} into to stop this instance's job. */
  get interruptBuffer(): SharedArrayBuffer {
    return this.#interrupt.buffer as SharedArrayBuffer;
  }

  /** Runs one job; never throws. */
  run(jobId: number, job: JobState, input: Uint8Array): JobOutcome {
    this.#job = job;
    Atomics.store(this.#interrupt, 0, jobId);
    let trap: { error: unknown } | undefined;
    try {
      if (!this.#started) {
        this.#started = true;
        this.#start?.();
      }
      const ptr = this.#exports.allocate(input.length);
      this.#bytes(ptr, input.length, "allocate").set(input);
      this.#exports.run_e(ptr, input.length, job.ident);
      if (job.failure === undefined) this.#exports.deallocate(ptr, input.length);
    } catch (error) {
      trap = { error };
    }
    const interrupted = Atomics.exchange(this.#interrupt, 0, 0) === INTERRUPTED;
    this.#job = undefined;

    const name = this.#spec.name;
    if (interrupted) {
      return { result: fail(`runnable "${name}" was interrupted`), reusable: false };
    }
    if (job.failure !== undefined) {
      // Even if the module caught the host's exception and carried on.
      return { result: fail(job.failure), reusable: false };
    }
    if (trap !== undefined) {
      // A trap after return_error reports the module's own error.
      const result = job.result?.ok === false
        ? job.result
        : fail(`runnable "${name}" trapped: ${describe(trap.error)}${this.#memoryNote()}`);
      return { result, reusable: false };
    }
    // Reactr answers a job that returned nothing with an empty result.
    return { result: job.result ?? { ok: true, output: new Uint8Array(0) }, reusable: true };
  }

  #imports(module: WebAssembly.Module): WebAssembly.Imports {
    const env: Record<string, WebAssembly.ImportValue> = {
      return_result: (ptr: number, size: number, ident: number) => {
        const job = this.#jobFor(ident, "return_result");
        if (job) job.result = { ok: true, output: this.#bytes(ptr, size, "return_result").slice() };
      },
      return_error: (code: number, ptr: number, size: number, ident: number) => {
        const job = this.#jobFor(ident, "return_error");
        if (job) job.result = { ok: false, code, message: this.#text(ptr, size, "return_error") };
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
        if (job.pendingFfi !== undefined) {
          // Reactr refuses a second result before the first is collected.
          job.log(LEVEL_WARN, "env.request_get_field: the previous result was never collected");
          return -1;
        }
        const field = job.request
          ? requestField(job.request, fieldType, key)
          : { error: "no request is attached to this job" };
        if ("error" in field) {
          // A negative size: the length of an error message (Reactr's FFIResult.FFISize).
          job.pendingFfi = new TextEncoder().encode(field.error);
          return -job.pendingFfi.length;
        }
        job.pendingFfi = field.value;
        return field.value.length;
      },
      get_ffi_result: (ptr: number, ident: number) => {
        const job = this.#jobFor(ident, "get_ffi_result");
        if (!job || job.pendingFfi === undefined) return -1;
        const data = job.pendingFfi;
        job.pendingFfi = undefined;
        this.#bytes(ptr, data.length, "get_ffi_result").set(data);
        return 0;
      },
    };
    const imports: Record<string, Record<string, WebAssembly.ImportValue>> = { env };
    for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
      if (kind !== "function" || !STUBBED_MODULES.includes(from)) continue;
      if (from === "env" && SUPPORTED.includes(name)) continue;
      // Present so the module instantiates; a call fails the job (the full ABI comes later).
      (imports[from] ??= {})[name] = () => {
        throw this.#fault(`host function ${from}.${name} is not supported yet`);
      };
    }
    return imports;
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
        `${fn} passed bytes ${start}..${
          start + size
        }, outside its ${buffer.byteLength}-byte memory`,
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

function fail(message: string): RunResult {
  return { ok: false, code: 500, message };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
