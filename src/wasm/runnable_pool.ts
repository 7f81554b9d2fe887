/**
 * The workers that run runnables' jobs: up to `concurrency` Web Workers, one job each at a time,
 * a FIFO queue in front of them, and a time limit per job.
 *
 * The time limit does not rely on `Worker.terminate()`: in Deno 2.9 it leaves a worker that is
 * busy in a loop running forever (denoland/deno#35657). Every module is instrumented at load
 * (see _instrument.ts) to check an interrupt word at each function entry and loop header; on
 * timeout the pool writes INTERRUPTED into the running instance's word, the job traps within
 * microseconds and the worker stays usable. A worker that still does not answer within
 * {@linkcode INTERRUPT_GRACE_MS} is terminated and replaced.
 *
 * @module
 */

import { INTERRUPTED } from "./_instrument.ts";
import { MAX_LOG_BYTES, MAX_LOG_RECORDS } from "./_host.ts";
import { ADOPT, type PoolRunnable, RELEASE, RETAIN, SUBMIT } from "./_pool_internals.ts";
import type { FromWorker, ToWorker } from "./_protocol.ts";
import type { RequestInfo, RunnableLogFields, RunnableLogLevel, RunResult } from "./runnable.ts";

/** Workers a pool runs at most, unless told otherwise. */
export const DEFAULT_CONCURRENCY = 2;
/** How long an interrupted worker may take to answer before it is terminated and replaced. */
export const INTERRUPT_GRACE_MS = 1000;

const INTERRUPT_RETRY_MS = 25;
const MAX_JOB_ID = 0x7fffffff;
const LEVELS: Record<number, RunnableLogLevel> = { 1: "error", 2: "warn", 3: "info", 4: "debug" };

/**
 * Permissions of the pool's workers. `"inherit"`: the process's own (the default; Wasm code
 * reaches nothing but the host functions either way). `"none"`: no permission at all, which
 * Deno 2.9 allows only with `--unstable-worker-options` (or `"unstable": ["worker-options"]`
 * in deno.json); without it Deno ends the whole process (exit code 70) when the first worker
 * starts, so choose it only where that flag is set.
 */
export type WorkerPermissions = "inherit" | "none";

/** Options of {@linkcode RunnablePool}. */
export interface RunnablePoolOptions {
  /** Most jobs running at once, one worker each (default {@linkcode DEFAULT_CONCURRENCY}). */
  concurrency?: number;
  /** Permissions of the workers (default `"inherit"`). */
  workerPermissions?: WorkerPermissions;
}

interface Job {
  id: number;
  runnable: PoolRunnable;
  input: Uint8Array<ArrayBuffer>;
  request: RequestInfo | undefined;
  signal: AbortSignal | undefined;
  resolve(result: RunResult): void;
  reject(error: unknown): void;
  settled: boolean;
  onAbort: (() => void) | undefined;
  /** The time limit; once it has passed, the interrupt retries. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Set once the job was interrupted: when the worker is given up. */
  grace: ReturnType<typeof setTimeout> | undefined;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | undefined;
  /** Runnables whose module this worker has been sent. */
  loaded: Set<number>;
  /** The interrupt word of each runnable's current instance in this worker. */
  interrupts: Map<number, Int32Array>;
}

type Outcome = { result: RunResult } | { error: unknown };

/**
 * Workers shared by any number of runnables. Workers start when jobs need them (none before
 * the first job) and keep one instance per runnable they have run, reused across jobs.
 *
 * @example
 * ```ts
 * using pool = new RunnablePool({ concurrency: navigator.hardwareConcurrency });
 * const hello = await Runnable.load("hello", bytes, { pool });
 * const result = await hello.run(new TextEncoder().encode("my friend"));
 * ```
 */
export class RunnablePool {
  /** Most jobs running at once. */
  readonly concurrency: number;
  /** Permissions of the workers. */
  readonly workerPermissions: WorkerPermissions;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #nextJobId = 1;
  #closed = false;
  #adopted = false;
  #users = 0;

  /**
   * Makes a pool; no worker starts before the first job.
   *
   * @param options concurrency and worker permissions
   * @throws {RangeError} `concurrency` is not a positive integer
   * @throws {TypeError} `workerPermissions` is neither `"inherit"` nor `"none"`
   */
  constructor(options: RunnablePoolOptions = {}) {
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    }
    const permissions = options.workerPermissions ?? "inherit";
    if (permissions !== "inherit" && permissions !== "none") {
      throw new TypeError(`workerPermissions must be "inherit" or "none", got "${permissions}"`);
    }
    this.concurrency = concurrency;
    this.workerPermissions = permissions;
  }

  /** Whether {@linkcode RunnablePool.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stops every worker. Queued and running jobs reject with an `Error`; later jobs too.
   * Calling it again does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const error = new Error("the runnable pool was closed");
    for (const job of this.#queue.splice(0)) this.#settle(job, { error });
    for (const slot of this.#slots.splice(0)) {
      const job = slot.job;
      if (job) {
        // Stop the code too: terminate() alone does not stop a busy worker.
        this.#tryInterrupt(slot, job);
        this.#clearTimers(job);
        this.#settle(job, { error });
      }
      slot.worker.terminate();
    }
  }

  /** Same as {@linkcode RunnablePool.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Queues one job of `runnable` (for `Runnable.run`).
   *
   * @param runnable the compiled runnable and its limits
   * @param input the job's input
   * @param request the request it serves
   * @param signal aborts the job
   * @returns the job's result
   * @ignore internal to src/wasm/ (the symbol is not exported)
   */
  [SUBMIT](
    runnable: PoolRunnable,
    input: Uint8Array,
    request: RequestInfo | undefined,
    signal: AbortSignal | undefined,
  ): Promise<RunResult> {
    if (this.#closed) return Promise.reject(new Error("the runnable pool was closed"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const job: Job = {
        id: this.#jobId(),
        runnable,
        // A copy of our own, moved to the worker at dispatch: the caller may reuse theirs.
        input: input.slice(),
        request,
        signal,
        resolve,
        reject,
        settled: false,
        onAbort: undefined,
        timer: undefined,
        grace: undefined,
      };
      if (signal) {
        job.onAbort = () => this.#abort(job);
        signal.addEventListener("abort", job.onAbort, { once: true });
      }
      this.#queue.push(job);
      this.#pump();
    });
  }

  /**
   * Marks the pool as made for its runnables: it closes when the last one is released.
   * @ignore internal to src/wasm/
   */
  [ADOPT](): void {
    this.#adopted = true;
  }

  /**
   * A runnable starts using the pool.
   * @ignore internal to src/wasm/
   */
  [RETAIN](): void {
    this.#users++;
  }

  /**
   * A runnable was closed: workers drop its module and instance.
   * @ignore internal to src/wasm/
   */
  [RELEASE](key: number): void {
    this.#users--;
    for (const slot of this.#slots) {
      if (slot.loaded.delete(key)) {
        slot.worker.postMessage({ kind: "forget", key } satisfies ToWorker);
      }
    }
    if (this.#adopted && this.#users <= 0) this.close();
  }

  #jobId(): number {
    const id = this.#nextJobId;
    this.#nextJobId = id >= MAX_JOB_ID ? 1 : id + 1;
    return id;
  }

  /** Starts queued jobs on idle workers, and workers for jobs that wait. */
  #pump(): void {
    if (this.#closed) return;
    while (this.#queue.length > 0) {
      const idle = this.#slots.filter((slot) => slot.ready && slot.job === undefined);
      if (idle.length === 0) break;
      const job = this.#queue.shift()!;
      // A worker that already has an instance of this runnable saves an instantiation.
      const slot = idle.find((s) => s.loaded.has(job.runnable.key)) ?? idle[0]!;
      this.#start(slot, job);
    }
    const starting = this.#slots.filter((slot) => !slot.ready).length;
    for (let wanted = this.#queue.length - starting; wanted > 0; wanted--) {
      if (this.#slots.length >= this.concurrency) break;
      this.#spawn();
    }
  }

  #spawn(): void {
    const options: WorkerOptions & { deno?: { permissions: "none" } } = { type: "module" };
    if (this.workerPermissions === "none") options.deno = { permissions: "none" };
    const worker = new Worker(new URL("./_worker.ts", import.meta.url), options);
    const slot: Slot = {
      worker,
      ready: false,
      job: undefined,
      loaded: new Set(),
      interrupts: new Map(),
    };
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.#onMessage(slot, event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.#onWorkerError(slot, event.message);
    };
    worker.onmessageerror = () => this.#onWorkerError(slot, "a message could not be decoded");
    this.#slots.push(slot);
  }

  #start(slot: Slot, job: Job): void {
    const { key, name, maxMemoryPages, module, timeoutMs } = job.runnable;
    slot.job = job;
    const message: ToWorker = {
      kind: "run",
      jobId: job.id,
      runnable: { key, name, maxMemoryPages, module: slot.loaded.has(key) ? undefined : module },
      input: job.input,
      request: job.request,
    };
    slot.loaded.add(key);
    slot.worker.postMessage(message, [job.input.buffer]);
    job.timer = setTimeout(() => {
      const message = `runnable "${name}" exceeded its time limit of ${timeoutMs} ms`;
      this.#interrupt(slot, job, { result: { ok: false, code: 500, message } });
    }, timeoutMs);
  }

  #onMessage(slot: Slot, message: FromWorker): void {
    switch (message.kind) {
      case "ready":
        slot.ready = true;
        this.#pump();
        return;
      case "instance":
        slot.interrupts.set(message.key, new Int32Array(message.interrupt));
        return;
      case "done": {
        const job = slot.job;
        if (job?.id !== message.jobId) return;
        slot.job = undefined;
        this.#clearTimers(job);
        this.#emitLogs(job, message);
        this.#settle(job, { result: message.result });
        this.#pump();
      }
    }
  }

  #onWorkerError(slot: Slot, message: string): void {
    this.#removeSlot(slot);
    const job = slot.job;
    if (job) {
      this.#clearTimers(job);
      const text = `runnable "${job.runnable.name}": its Wasm worker failed: ${message}`;
      this.#settle(job, { result: { ok: false, code: 500, message: text } });
    }
    if (!slot.ready && !this.#slots.some((s) => s.ready)) {
      // No worker could start: fail what waits rather than start workers forever.
      const result: RunResult = {
        ok: false,
        code: 500,
        message: `could not start a Wasm worker: ${message}`,
      };
      for (const queued of this.#queue.splice(0)) this.#settle(queued, { result });
    }
    this.#pump();
  }

  #abort(job: Job): void {
    const outcome = { error: job.signal!.reason };
    const queued = this.#queue.indexOf(job);
    if (queued !== -1) {
      this.#queue.splice(queued, 1);
      this.#settle(job, outcome);
      return;
    }
    const slot = this.#slots.find((s) => s.job === job);
    if (slot) this.#interrupt(slot, job, outcome);
  }

  /** Answers the job now and stops its code; the worker is free once it reports back. */
  #interrupt(slot: Slot, job: Job, outcome: Outcome): void {
    this.#settle(job, outcome);
    if (job.grace !== undefined) return;
    clearTimeout(job.timer);
    this.#tryInterrupt(slot, job);
    // The word may not hold this job's id yet (the worker is between two steps): retry.
    job.timer = setInterval(() => this.#tryInterrupt(slot, job), INTERRUPT_RETRY_MS);
    job.grace = setTimeout(() => this.#abandon(slot, job), INTERRUPT_GRACE_MS);
  }

  #tryInterrupt(slot: Slot, job: Job): void {
    const word = slot.interrupts.get(job.runnable.key);
    // Only if this very job is running: a stale request must not stop the next job.
    if (word) Atomics.compareExchange(word, 0, job.id, INTERRUPTED);
  }

  /** The interrupted worker did not answer: replace it. */
  #abandon(slot: Slot, job: Job): void {
    this.#clearTimers(job);
    this.#removeSlot(slot);
    const message = `runnable "${job.runnable.name}": its worker did not stop within ` +
      `${INTERRUPT_GRACE_MS} ms of an interrupt; replaced it (the thread may keep running)`;
    this.#log(job.runnable, "error", message, {
      runnable: job.runnable.name,
      requestId: job.request?.id,
    });
    this.#pump();
  }

  #removeSlot(slot: Slot): void {
    const index = this.#slots.indexOf(slot);
    if (index !== -1) this.#slots.splice(index, 1);
    slot.worker.terminate();
  }

  #clearTimers(job: Job): void {
    clearTimeout(job.timer);
    clearInterval(job.timer);
    clearTimeout(job.grace);
  }

  #settle(job: Job, outcome: Outcome): void {
    if (job.settled) return;
    job.settled = true;
    if (job.onAbort) job.signal!.removeEventListener("abort", job.onAbort);
    if ("error" in outcome) job.reject(outcome.error);
    else job.resolve(outcome.result);
  }

  #emitLogs(job: Job, message: Extract<FromWorker, { kind: "done" }>): void {
    const runnable = job.runnable;
    const fields = { runnable: runnable.name, ident: message.ident, requestId: job.request?.id };
    for (const { level, message: text } of message.logs) {
      this.#log(runnable, LEVELS[level] ?? "info", text, fields);
    }
    if (message.droppedLogs > 0) {
      const text = `${message.droppedLogs} more log messages of this job were dropped ` +
        `(at most ${MAX_LOG_RECORDS} messages and ${MAX_LOG_BYTES} bytes per job)`;
      this.#log(runnable, "warn", text, fields);
    }
  }

  #log(
    runnable: PoolRunnable,
    level: RunnableLogLevel,
    message: string,
    fields: RunnableLogFields,
  ): void {
    try {
      runnable.log?.(level, message, fields);
    } catch {
      // A failing logger must not take the pool down; the message is lost.
    }
  }
}
