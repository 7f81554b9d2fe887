/**
 * The workers that run runnables' jobs: up to `concurrency` Web Workers, one job each at a time,
 * a FIFO queue in front of them, and a time limit per job.
 *
 * Jobs reach a worker through its shared-memory channel (_job_channel.ts), in batches: an idle
 * worker takes its share of the queue at once (at most {@linkcode MAX_BATCH}), runs the jobs one
 * after the other and writes each answer back; the pool reads the answers as they come
 * (`Atomics.waitAsync`, which never blocks this thread). No job makes a postMessage unless its
 * input or answer is too large for the channel. Jobs still waiting in a batch behind one that has
 * run for {@linkcode STEAL_AFTER_MS} are taken back and go to the next free worker, so a slow or
 * looping job holds up no other.
 *
 * The time limit does not rely on `Worker.terminate()`: in Deno 2.9 it leaves a worker that is
 * busy in a loop running forever (denoland/deno#35657). Every module is instrumented at load
 * (see _instrument.ts) to check an interrupt word at each function entry and loop header; on
 * timeout the pool writes INTERRUPTED into the running instance's word, the job traps within
 * microseconds and the worker stays usable. A worker that still does not answer within
 * {@linkcode INTERRUPT_GRACE_MS} is terminated and replaced. One timer per busy worker (not per
 * job) watches the job it runs, from the start time the worker writes in the channel.
 *
 * Short jobs of self-contained runnables skip the workers: the inline lane (_inline_lane.ts) runs
 * them on the pool's own thread, because handing a tiny job to a worker and reading its answer
 * back costs more than running it (~35 µs a job: the channel's `Atomics.notify`, the `waitAsync`
 * wakeups, the worker's CPU). They run in the same pump as the batches, one after the other in
 * the order they came, not within `Runnable.run`: jobs of one turn are still queued when it ends,
 * so `close()` and abort signals treat them as any queued job. Eligible: a runnable that imports
 * only `env` functions that stay inside its instance (results, logs, the request, headers,
 * secrets, FFI results and variables) and WASI's, never the cache, fetch, GraphQL, the database
 * or static files (their calls wait for this thread, which would deadlock); a whole input of at
 * most 64 KiB (never a streamed one). Such a job runs in an instance of the lane's own, reset
 * after each job as in a worker, with a budget of 2 ms (`INLINE_BUDGET_MS`, or its time limit if
 * shorter; 10 ms for a runnable's first job, which also compiles and takes the snapshot) that a
 * small watchdog worker enforces through the instance's interrupt word. A job that runs over the
 * budget (its first, with the module's start functions, too) is dropped without effect (its
 * result and logs discarded) and run again in a worker as usual; after 3 such overruns (one taken
 * back per 1 000 jobs within the budget) the runnable's jobs go to workers for the pool's life.
 * One overrun alone does not demote: on a busy machine the OS or V8 sometimes holds the thread
 * for a few ms during any job (_inline_lane.ts). A trap, an error or the memory limit within the
 * budget is the job's answer, as in a worker.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { INTERRUPTED } from "./_instrument.ts";
import { MAX_LOG_BYTES, MAX_LOG_RECORDS } from "./_host.ts";
import { clock, MAX_BATCH, MAX_CALL_BYTES, PoolChannel } from "./_job_channel.ts";
import {
  ADOPT,
  checkSecrets,
  type PoolRunnable,
  RELEASE,
  RETAIN,
  SUBMIT,
} from "./_pool_internals.ts";
import type { DoneMessage, FromWorker, JobLog, ToWorker } from "./_protocol.ts";
import type {
  JobCancellation,
  RequestInfo,
  RunnableLogFields,
  RunnableLogLevel,
  RunOptions,
  RunResult,
} from "./runnable.ts";
import { errorReply } from "./_call_reply.ts";
import { isCacheCall, serveCacheCall } from "./_cache_call.ts";
import { isDatabaseCall, serveDatabaseCall } from "./_database_call.ts";
import { type FetchPolicy, fetchPolicy, isFetchCall, serveFetchCall } from "./_fetch_call.ts";
import { isGraphqlCall, serveGraphqlCall } from "./_graphql_call.ts";
import { InputStream, isInputCall, type StreamedInput } from "./_input_call.ts";
import { isStaticFileCall, serveStaticFileCall } from "./_static_file_call.ts";
import type { CacheBackend, DatabaseBackend, StaticFiles } from "./host_services.ts";
import { RunnableCache } from "./runnable_cache.ts";
import { workerUrl } from "./_worker_source.ts";
import { InlineLane, MAX_INLINE_INPUT } from "./_inline_lane.ts";
import { allocBytes, copyBytes } from "../wire/mod.ts";

/** Workers a pool runs at most, unless told otherwise. */
export const DEFAULT_CONCURRENCY = 2;
/** How long an interrupted worker may take to answer before it is terminated and replaced. */
export const INTERRUPT_GRACE_MS = 1000;
/**
 * How long a job may run before the jobs queued behind it in its worker's batch are taken back
 * for another worker.
 */
const STEAL_AFTER_MS = 5;

/**
 * How long the pool polls for the answer of a lone job (no other batch out, nothing queued)
 * before it waits with `Atomics.waitAsync`: only when the worker is polling too (it takes the job
 * at once) and the last lone job was answered within that time. An answer seen by polling saves
 * the wakeup of this thread (~10 µs) and the worker's notification of a waiter; a runnable slower
 * than this stops the polling at once.
 */
const POLL_MS = 0.02;
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
  /**
   * The cache behind `env.cache_set` / `env.cache_get`, shared by every job of the pool (and of
   * other pools given the same one); it may answer asynchronously. Default: a
   * {@linkcode RunnableCache} of the pool's own.
   */
  cache?: CacheBackend;
  /**
   * The database behind `env.db_exec` (the Directive's `connections.database` and `queries`).
   * Default: none; `db_exec` then answers an error saying what to configure.
   */
  database?: DatabaseBackend;
  /**
   * The files behind `env.get_static_file` (such as a {@linkcode StaticDir}). Default: none;
   * `get_static_file` then answers an error saying what to configure.
   */
  staticFiles?: StaticFiles;
  /**
   * The only secrets `env.get_secret_value` may read, by name; any other name is an error for
   * the module. Default: none. Values are never logged.
   */
  secrets?: Record<string, string>;
  /**
   * The hosts `env.fetch_url` may reach: `"example.com"` (any port), `"example.com:8443"`,
   * `"*.example.com"` (its subdomains), `"*"` (any host). Default: none, every fetch is refused.
   * A loopback or private address (`127.0.0.1`, `10.x`, `[::1]`, `localhost`...) is reached only
   * through an exact entry naming it, never through a wildcard. Only http and https.
   */
  allowedHosts?: readonly string[];
  /**
   * The `Authorization` header `env.fetch_url` and `env.graphql_query` send to a host, by host
   * (`"api.example.com"` or `"api.example.com:8443"`; `host:port` wins), replacing one the
   * runnable set: Atmo's `authentication.domains.<host>` `{headerType, value}` as
   * `"<headerType> <value>"`. Only hosts `allowedHosts` allows are reached at all. Default: none.
   * Values are never logged.
   */
  authHeaders?: Readonly<Record<string, string>>;
  /**
   * Most time one `env.fetch_url` may take, in ms (default 10 000, at most 60 000); never more
   * than the job's time left.
   */
  fetchTimeoutMs?: number;
  /**
   * Most bytes of a response body `env.fetch_url` accepts; a larger one is an error for the
   * module (default and most: 1 MiB minus 5 bytes, what one host-call reply holds).
   */
  fetchMaxBytes?: number;
}

interface Job {
  id: number;
  runnable: PoolRunnable;
  /** The input; empty when it is streamed. */
  input: Uint8Array<ArrayBuffer>;
  /** A streamed input, which the worker pulls with input calls (_input_call.ts). */
  stream: InputStream | undefined;
  request: RequestInfo | undefined;
  /** The caller passed the request's body as the input. */
  bodyIsInput: boolean;
  signal: AbortSignal | undefined;
  cancellation: JobCancellation | undefined;
  resolve(result: RunResult): void;
  reject(error: unknown): void;
  settled: boolean;
  /** Listens to `signal`, if any. */
  onAbort: (() => void) | undefined;
  /** The worker whose batch holds the job, until its answer is read. */
  slot: Slot | undefined;
  /** The job's record in that batch. */
  index: number;
  /** Set once the job was interrupted: retries the interrupt. */
  retry: ReturnType<typeof setInterval> | undefined;
  /** Set once the job was interrupted: when the worker is given up. */
  grace: ReturnType<typeof setTimeout> | undefined;
  /** The inline lane has yet to see the job (its runnable and input may run there). */
  inline: boolean;
}

interface Slot {
  worker: Worker;
  channel: PoolChannel;
  ready: boolean;
  removed: boolean;
  /** The batch handed to the worker, by record (undefined: taken back); empty when idle. */
  batch: (Job | undefined)[];
  /** Answers of the batch read so far. */
  answered: number;
  /** Jobs whose answer comes in a `done` message, by id. */
  posted: Map<number, Job>;
  /** Runnables whose module this worker has been sent. */
  loaded: Set<number>;
  /** Runnables closed while the worker had a batch: it forgets them once that is answered. */
  forget: number[];
  /** The interrupt word of each runnable's current instance in this worker. */
  interrupts: Map<number, Int32Array>;
  /** Checks the running job's time limit and the jobs behind it; set while a batch runs. */
  watchdog: ReturnType<typeof setTimeout> | undefined;
  /** When the watchdog fires ({@linkcode clock}). */
  watchdogAt: number;
  /** When the batch was handed over ({@linkcode clock}). */
  publishedAt: number;
  /** The last lone job was answered within {@linkcode POLL_MS}: poll for the next one. */
  quick: boolean;
  /** Stops the asynchronous host call the worker waits on; set while one runs. */
  calling: AbortController | undefined;
}

type Outcome = { result: RunResult } | { error: unknown };
/** A host call's reply, whole or in parts (_job_channel.ts `answerCall`). */
type Reply = Uint8Array | readonly Uint8Array[];

const NO_BATCH: (Job | undefined)[] = [];
const EMPTY = new Uint8Array(0);

/**
 * Workers shared by any number of runnables. Workers start when jobs need them (none before
 * the first job) and keep one instance per runnable they have run, reset to its state after
 * initialisation once each job is answered (no job sees what another wrote).
 *
 * Short jobs of runnables that reach nothing outside their instance run on the pool's own thread
 * instead (the inline lane, see the module doc), within a 2 ms budget each; a job that runs over
 * it is run again in a worker, and a runnable whose jobs keep doing so goes back to the workers
 * for good. {@linkcode RunnablePool.inlineJobs} counts the jobs the lane answered.
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
  /** The cache of `env.cache_set` / `env.cache_get`. */
  readonly cache: CacheBackend;
  /** The database of `env.db_exec`, if any. */
  readonly database: DatabaseBackend | undefined;
  /** The files of `env.get_static_file`, if any. */
  readonly staticFiles: StaticFiles | undefined;
  /** The secrets of the pool's runnables (unless a runnable was given its own). */
  readonly secrets: Readonly<Record<string, string>> | undefined;
  /** The hosts `env.fetch_url` may reach (unless a runnable was given its own). */
  readonly allowedHosts: readonly string[];
  /** The `Authorization` values sent to hosts, by host (unless a runnable was given its own). */
  readonly authHeaders: Readonly<Record<string, string>>;
  /** Most time one `env.fetch_url` may take, in ms. */
  readonly fetchTimeoutMs: number;
  /** Most bytes of a response body `env.fetch_url` accepts. */
  readonly fetchMaxBytes: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #nextJobId = 1;
  #closed = false;
  #adopted = false;
  #users = 0;
  #pumpSoon = false;
  readonly #lane: InlineLane;
  #inlineJobs = 0;
  /** Queued jobs with `inline` set: the next pump offers them to the lane. */
  #inlineWaiting = 0;

  /**
   * Makes a pool; no worker starts before the first job.
   *
   * @param options concurrency, worker permissions, cache, secrets and fetch's hosts and bounds
   * @throws {RangeError} `concurrency` is not a positive integer, or `fetchTimeoutMs` or
   *   `fetchMaxBytes` is out of range
   * @throws {TypeError} `workerPermissions` is neither `"inherit"` nor `"none"`, `secrets`
   *   is not a record of strings, or an `allowedHosts` entry is not a host
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
    this.cache = options.cache ?? new RunnableCache();
    this.database = options.database;
    this.staticFiles = options.staticFiles;
    this.secrets = options.secrets && checkSecrets(options.secrets, "secrets");
    const policy = fetchPolicy(options, "");
    this.allowedHosts = policy.allowedHosts;
    this.authHeaders = policy.authHeaders;
    this.fetchTimeoutMs = policy.timeoutMs;
    this.fetchMaxBytes = policy.maxBytes;
    this.#lane = new InlineLane({ workerPermissions: permissions });
  }

  /** Whether {@linkcode RunnablePool.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Jobs answered on the pool's own thread so far, by the inline lane (a statistic; a job that
   * ran over the lane's budget and went to a worker is not counted).
   */
  get inlineJobs(): number {
    return this.#inlineJobs;
  }

  /**
   * Stops every worker, the inline lane's watchdog too. Queued and running jobs reject with an
   * `Error`; later jobs too. Calling it again does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lane.close();
    const error = new Error("the runnable pool was closed");
    for (const job of this.#queue.splice(0)) this.#settle(job, { error });
    for (const slot of this.#slots.splice(0)) {
      slot.removed = true;
      clearTimeout(slot.watchdog);
      slot.calling?.abort();
      for (const job of [...slot.batch, ...slot.posted.values()]) {
        if (!job) continue;
        // Stop the code too: terminate() alone does not stop a busy worker.
        this.#tryInterrupt(slot, job);
        this.#clearTimers(job);
        this.#settle(job, { error });
      }
      slot.worker.terminate();
      slot.channel.wake();
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
   * @param input the job's input, or a streamed one (its size checked by `Runnable.run`)
   * @param request the request it serves
   * @param options what aborts or cancels the job
   * @returns the job's result
   * @ignore internal to src/wasm/ (the symbol is not exported)
   */
  [SUBMIT](
    runnable: PoolRunnable,
    input: Uint8Array | StreamedInput,
    request: RequestInfo | undefined,
    { signal, cancellation }: RunOptions,
  ): Promise<RunResult> {
    if (this.#closed) return Promise.reject(new Error("the runnable pool was closed"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (cancellation?.reason) return Promise.reject(cancellation.reason);
    const whole = input instanceof Uint8Array;
    return new Promise((resolve, reject) => {
      const job: Job = {
        id: this.#jobId(),
        runnable,
        // A copy of our own: the caller may reuse theirs before the job is handed over. A
        // small one is cut from a shared slab: no ArrayBuffer of its own per job.
        input: whole ? copyBytes(input, allocBytes) : EMPTY,
        stream: whole ? undefined : new InputStream(input),
        request,
        // A streamed input is the request's body: the instance's memory holds it once.
        bodyIsInput: whole ? request?.body === input : request !== undefined,
        signal,
        cancellation,
        resolve,
        reject,
        settled: false,
        onAbort: undefined,
        slot: undefined,
        index: -1,
        retry: undefined,
        grace: undefined,
        inline: whole && runnable.inlineable && input.length <= MAX_INLINE_INPUT,
      };
      if (job.inline) this.#inlineWaiting++;
      if (signal) {
        job.onAbort = () => this.#abort(job, signal.reason);
        signal.addEventListener("abort", job.onAbort, { once: true });
      }
      cancellation?.onCancel((reason) => this.#abort(job, reason));
      this.#queue.push(job);
      // Jobs submitted in the same turn of the event loop (e.g. the INVOKEs of one channel
      // frame) go out together, in as few batches as workers: one wakeup each, not one per job.
      if (!this.#pumpSoon) {
        this.#pumpSoon = true;
        setImmediate(() => {
          this.#pumpSoon = false;
          this.#pump();
        });
      }
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
   * A runnable was closed: the inline lane and the workers drop its module and instance (a busy
   * worker once its batch is answered, as jobs of it may be in that batch).
   * @ignore internal to src/wasm/
   */
  [RELEASE](key: number): void {
    this.#users--;
    this.#lane.release(key);
    for (const slot of this.#slots) {
      if (!slot.loaded.has(key)) continue;
      if (slot.batch.length > 0) slot.forget.push(key);
      else this.#forget(slot, key);
    }
    if (this.#adopted && this.#users <= 0) this.close();
  }

  #jobId(): number {
    const id = this.#nextJobId;
    this.#nextJobId = id >= MAX_JOB_ID ? 1 : id + 1;
    return id;
  }

  /**
   * Runs the queued jobs the inline lane takes, then hands the others to idle workers and starts
   * workers for jobs that wait.
   */
  #pump(): void {
    if (this.#closed) return;
    if (this.#inlineWaiting > 0) this.#runInline();
    if (this.#closed) return;
    // Each worker's share of what waits now; what remains goes to whichever is free first.
    const share = Math.min(MAX_BATCH, Math.ceil(this.#queue.length / this.concurrency));
    while (this.#queue.length > 0) {
      const slot = this.#idleSlot(this.#queue[0]!.runnable.key);
      if (!slot) break;
      this.#dispatch(slot, share);
    }
    let starting = 0;
    for (const slot of this.#slots) if (!slot.ready) starting++;
    for (let wanted = this.#queue.length - starting; wanted > 0; wanted--) {
      if (this.#slots.length >= this.concurrency) break;
      this.#spawn();
    }
  }

  /**
   * Runs, in order, the queued jobs that the inline lane takes; one that runs over the lane's
   * budget goes back to the front of the queue, for a worker.
   */
  #runInline(): void {
    this.#inlineWaiting = 0;
    const lane = this.#lane;
    const queue = this.#queue;
    const taken: Job[] = [];
    let kept = 0;
    for (const job of queue) {
      if (job.inline && lane.accepts(job.runnable, job.input.length)) taken.push(job);
      else queue[kept++] = job;
      job.inline = false;
    }
    if (taken.length === 0) return;
    queue.length = kept;
    const fallback: Job[] = [];
    const closed = () => ({ error: new Error("the runnable pool was closed") });
    for (const job of taken) {
      // A log callback may have aborted the job or closed the pool meanwhile.
      if (job.settled) continue;
      if (this.#closed) {
        this.#settle(job, closed());
        continue;
      }
      const { runnable, request } = job;
      const answer = lane.accepts(runnable, job.input.length)
        ? lane.run(runnable, job.id, job.input, request)
        : undefined;
      if (!answer) {
        // Over the budget, without effect (or its runnable went over meanwhile): a worker runs it.
        fallback.push(job);
        continue;
      }
      this.#inlineJobs++;
      this.#emitLogs(runnable, request, answer.ident, answer.logs, answer.droppedLogs);
      this.#settle(job, { result: answer.result });
    }
    if (!this.#closed) queue.unshift(...fallback);
    else for (const job of fallback) this.#settle(job, closed());
  }

  /** An idle worker, preferably one that has an instance of runnable `key` already. */
  #idleSlot(key: number): Slot | undefined {
    let idle: Slot | undefined;
    for (const slot of this.#slots) {
      if (!slot.ready || slot.batch.length > 0) continue;
      if (slot.loaded.has(key)) return slot;
      idle ??= slot;
    }
    return idle;
  }

  #spawn(): void {
    const options: WorkerOptions & { deno?: { permissions: "none" } } = { type: "module" };
    if (this.workerPermissions === "none") options.deno = { permissions: "none" };
    const worker = new Worker(workerUrl(), options);
    const slot: Slot = {
      worker,
      channel: new PoolChannel(),
      ready: false,
      removed: false,
      batch: NO_BATCH,
      answered: 0,
      posted: new Map(),
      loaded: new Set(),
      forget: [],
      interrupts: new Map(),
      watchdog: undefined,
      watchdogAt: 0,
      publishedAt: 0,
      quick: false,
      calling: undefined,
    };
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.#onMessage(slot, event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.#onWorkerError(slot, event.message);
    };
    worker.onmessageerror = () => this.#onWorkerError(slot, "a message could not be decoded");
    worker.postMessage({ kind: "channel", buffer: slot.channel.buffer } satisfies ToWorker);
    this.#slots.push(slot);
  }

  /** Hands an idle worker the first `share` jobs of the queue, in one batch. */
  #dispatch(slot: Slot, share: number): void {
    const queue = this.#queue;
    const channel = slot.channel;
    const batch: Job[] = [];
    channel.begin();
    while (batch.length < queue.length && batch.length < share) {
      const job = queue[batch.length]!;
      const { key, module, name, maxMemoryPages, resettable, readsRequest, log, secrets } =
        job.runnable;
      if (!slot.loaded.has(key)) {
        // Sent before the batch is published: the worker waits for it if need be.
        slot.loaded.add(key);
        const { timeoutMs } = job.runnable;
        const spec = { key, name, maxMemoryPages, timeoutMs, resettable, secrets };
        this.#post(slot, { kind: "load", spec, module });
      }
      const record = {
        id: job.id,
        key,
        input: job.input,
        // Serialized only for runnables that can read it (they import request_get_field).
        request: readsRequest ? job.request : undefined,
        bodyIsInput: job.bodyIsInput,
        keepsLogs: log !== undefined,
        streamedSize: job.stream?.size,
      };
      if (!channel.add(record)) {
        if (batch.length > 0) break; // the next batch takes it
        // Too large for the channel even alone: the worker gets it by message.
        const { input } = record;
        // A streamed body stays with the stream: the worker reads it from the instance's memory.
        const request = record.request && job.stream
          ? { ...record.request, body: EMPTY }
          : record.request;
        // Its own buffer: a message would clone all of a slab the input was cut from.
        this.#post(slot, { kind: "payload", jobId: job.id, input: input.slice(), request });
        channel.add(record, true);
      }
      job.slot = slot;
      job.index = batch.length;
      batch.push(job);
    }
    queue.splice(0, batch.length);
    slot.batch = batch;
    slot.answered = 0;
    // Read before publishing: a polling worker stops polling once it has the batch.
    const spinning = channel.spinning();
    const now = clock();
    channel.publish(now);
    slot.publishedAt = now;
    this.#arm(slot, now, batch.length > 1 ? STEAL_AFTER_MS : batch[0]!.runnable.timeoutMs);
    if (
      spinning && batch.length === 1 && slot.quick && queue.length === 0 && this.#alone(slot)
    ) {
      const until = now + POLL_MS;
      while (channel.answered() === 0 && clock() < until) {
        // The worker answers such a job within microseconds.
      }
    }
    this.#listen(slot, batch);
  }

  /** Whether no other worker has a batch. */
  #alone(slot: Slot): boolean {
    for (const other of this.#slots) if (other !== slot && other.batch.length > 0) return false;
    return true;
  }

  #post(slot: Slot, message: ToWorker): void {
    slot.worker.postMessage(message);
  }

  #forget(slot: Slot, key: number): void {
    if (slot.loaded.delete(key)) this.#post(slot, { kind: "forget", key });
  }

  /** Reads the batch's answers as the worker writes them, without blocking this thread. */
  #listen(slot: Slot, batch: (Job | undefined)[]): void {
    for (;;) {
      if (slot.removed || slot.batch !== batch) return;
      const calling = this.#serveCall(slot, batch);
      this.#readAnswers(slot);
      // A log callback may have closed the pool meanwhile.
      if (slot.removed) return;
      // The worker waits for an asynchronous host call; its reply listens again.
      if (calling) return;
      if (slot.answered === batch.length) break;
      const wait = slot.channel.waitAnswers(slot.answered);
      if (wait.async) {
        wait.value.then(() => this.#listen(slot, batch));
        return;
      }
    }
    // The batch is over: the worker is idle.
    if (batch.length === 1) slot.quick = clock() - slot.publishedAt < POLL_MS;
    slot.batch = NO_BATCH;
    for (const key of slot.forget.splice(0)) this.#forget(slot, key);
    this.#pump();
  }

  /**
   * Answers the host call the worker waits on, if any (_job_channel.ts): at once when the service
   * answers synchronously (the in-memory cache), else once its promise settles (a fetch, a
   * query, an asynchronous cache or file read) or the job is stopped, whichever comes first.
   *
   * @returns whether a call is still running (its end calls {@linkcode RunnablePool.#listen})
   */
  #serveCall(slot: Slot, batch: (Job | undefined)[]): boolean {
    if (slot.calling) return true;
    const call = slot.channel.pendingCall();
    if (!call) return false;
    // Calls come only while a record runs: the first one not answered.
    const index = slot.channel.answered();
    const controller = new AbortController();
    // The call is a view of the channel: every service reads it before its first await.
    const reply = this.#serve(call, batch[index], slot.channel.started(index), controller.signal);
    if (reply instanceof Uint8Array || Array.isArray(reply)) {
      slot.channel.answerCall(fitReply(reply));
      return false;
    }
    slot.calling = controller;
    const stopped = new Promise<Reply>((resolve) => {
      controller.signal.addEventListener(
        "abort",
        () => resolve(errorReply("the job was stopped while the host call ran")),
        { once: true },
      );
    });
    Promise.race([reply, stopped]).then((reply) => {
      slot.calling = undefined;
      if (slot.removed || slot.batch !== batch) return;
      slot.channel.answerCall(fitReply(reply));
      this.#listen(slot, batch);
    });
    return true;
  }

  /** Runs one host call of `job` (started at `started`, {@linkcode clock}); never rejects. */
  #serve(
    call: Uint8Array,
    job: Job | undefined,
    started: number,
    signal: AbortSignal,
  ): Reply | Promise<Reply> {
    if (isInputCall(call)) {
      return job?.stream ? job.stream.next() : errorReply("the job's input is not streamed");
    }
    if (isCacheCall(call)) return serveCacheCall(this.cache, call);
    if (isDatabaseCall(call)) return serveDatabaseCall(this.database, call);
    if (isStaticFileCall(call)) return serveStaticFileCall(this.staticFiles, call);
    const policy: FetchPolicy = job?.runnable.fetch ?? this.#fetchPolicy();
    const left = job ? job.runnable.timeoutMs - (clock() - started) : 0;
    const timeoutMs = Math.min(policy.timeoutMs, left);
    if (isFetchCall(call)) return serveFetchCall(call, policy, timeoutMs, signal);
    if (isGraphqlCall(call)) return serveGraphqlCall(call, policy, timeoutMs, signal);
    return errorReply(`unknown host call ${call[0]}`);
  }

  #fetchPolicy(): FetchPolicy {
    const { allowedHosts, authHeaders, fetchTimeoutMs: timeoutMs, fetchMaxBytes: maxBytes } = this;
    return { allowedHosts, authHeaders, timeoutMs, maxBytes };
  }

  #readAnswers(slot: Slot): void {
    const channel = slot.channel;
    const done = channel.answered();
    while (slot.answered < done) {
      const job = slot.batch[slot.answered++];
      const answer = channel.read(job?.runnable.allocOutput);
      if (!job || answer.kind === "skipped") continue;
      job.slot = undefined;
      this.#clearTimers(job);
      if (answer.kind === "posted") {
        if (!job.settled) slot.posted.set(job.id, job);
        continue;
      }
      this.#emitLogs(job.runnable, job.request, answer.ident, answer.logs, answer.dropped);
      this.#settle(job, { result: answer.result });
    }
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
      case "done":
        this.#onDone(slot, message);
    }
  }

  /** An answer too large for the channel; its POSTED record may be read before or after. */
  #onDone(slot: Slot, message: DoneMessage): void {
    const job = slot.posted.get(message.jobId) ??
      slot.batch.find((job) => job?.id === message.jobId);
    if (!job) return;
    slot.posted.delete(job.id);
    this.#clearTimers(job);
    this.#emitLogs(job.runnable, job.request, message.ident, message.logs, message.droppedLogs);
    this.#settle(job, { result: message.result });
  }

  #onWorkerError(slot: Slot, message: string): void {
    const wasReady = slot.ready;
    this.#removeSlot(slot, `its Wasm worker failed: ${message}`);
    if (!wasReady && !this.#slots.some((s) => s.ready)) {
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

  /** Sets the worker's watchdog to fire `ms` after `now` (an earlier one stays). */
  #arm(slot: Slot, now: number, ms: number): void {
    const at = now + ms;
    if (slot.watchdog !== undefined) {
      if (slot.watchdogAt <= at) return;
      clearTimeout(slot.watchdog);
    }
    slot.watchdogAt = at;
    slot.watchdog = setTimeout(() => this.#watch(slot), ms);
  }

  /** Enforces the running job's time limit and takes back the jobs stuck behind it. */
  #watch(slot: Slot): void {
    slot.watchdog = undefined;
    const batch = slot.batch;
    if (slot.removed || batch.length === 0) return;
    const channel = slot.channel;
    const index = channel.answered();
    const now = clock();
    // Between two jobs, or waiting for a message: look again soon.
    let next = STEAL_AFTER_MS;
    if (index < batch.length && channel.claimed(index)) {
      const running = now - channel.started(index);
      const job = batch[index];
      if (job && job.grace === undefined) {
        const left = job.runnable.timeoutMs - running;
        if (left <= 0) {
          const { name, timeoutMs } = job.runnable;
          const message = `runnable "${name}" exceeded its time limit of ${timeoutMs} ms`;
          this.#interrupt(slot, job, { result: { ok: false, code: 504, message } });
        } else next = left;
      }
      if (index + 1 < batch.length) {
        if (running >= STEAL_AFTER_MS) this.#reclaim(slot, index + 1);
        else next = Math.min(next, STEAL_AFTER_MS - running);
      }
    }
    this.#arm(slot, now, next);
  }

  /** Takes back the jobs of the batch from `from` on that the worker has not started. */
  #reclaim(slot: Slot, from: number): void {
    const taken: Job[] = [];
    for (let index = from; index < slot.batch.length; index++) {
      const job = slot.batch[index];
      if (job && slot.channel.take(index)) {
        slot.batch[index] = undefined;
        job.slot = undefined;
        taken.push(job);
      }
    }
    if (taken.length === 0) return;
    this.#queue.unshift(...taken);
    this.#pump();
  }

  #abort(job: Job, reason: unknown): void {
    const outcome = { error: reason };
    const queued = this.#queue.indexOf(job);
    if (queued !== -1) {
      this.#queue.splice(queued, 1);
      this.#settle(job, outcome);
      return;
    }
    const slot = job.slot;
    if (slot && !slot.channel.take(job.index)) {
      this.#interrupt(slot, job, outcome);
      return;
    }
    // Not started (taken back), or its answer is read or on its way by message.
    if (slot) slot.batch[job.index] = undefined;
    job.slot = undefined;
    this.#settle(job, outcome);
  }

  /** Answers the job now and stops its code; the worker goes on once it reports back. */
  #interrupt(slot: Slot, job: Job, outcome: Outcome): void {
    this.#settle(job, outcome);
    if (job.grace !== undefined) return;
    // A host call the job waits on ends now: the job's code then meets the interrupt.
    if (slot.batch[slot.channel.answered()] === job) slot.calling?.abort();
    this.#tryInterrupt(slot, job);
    // The word may not hold this job's id yet (the worker is between two steps): retry.
    job.retry = setInterval(() => this.#tryInterrupt(slot, job), INTERRUPT_RETRY_MS);
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
    this.#removeSlot(slot, "its Wasm worker was replaced");
    const message = `runnable "${job.runnable.name}": its worker did not stop within ` +
      `${INTERRUPT_GRACE_MS} ms of an interrupt; replaced it (the thread may keep running)`;
    this.#log(job.runnable, "error", message, {
      runnable: job.runnable.name,
      requestId: job.request?.id,
    });
    this.#pump();
  }

  /**
   * Terminates a worker: answers it wrote are read, jobs it has not started go back to the
   * queue, the others fail with `why`.
   */
  #removeSlot(slot: Slot, why: string): void {
    if (slot.removed) return;
    const index = this.#slots.indexOf(slot);
    if (index !== -1) this.#slots.splice(index, 1);
    slot.worker.terminate();
    slot.calling?.abort();
    clearTimeout(slot.watchdog);
    this.#readAnswers(slot);
    const requeue: Job[] = [];
    const failed: Job[] = [...slot.posted.values()];
    for (let i = slot.answered; i < slot.batch.length; i++) {
      const job = slot.batch[i];
      if (!job) continue;
      job.slot = undefined;
      if (slot.channel.take(i)) requeue.push(job);
      else failed.push(job);
    }
    for (const job of failed) {
      this.#clearTimers(job);
      const message = `runnable "${job.runnable.name}": ${why}`;
      this.#settle(job, { result: { ok: false, code: 500, message } });
    }
    slot.removed = true;
    slot.batch = NO_BATCH;
    slot.posted.clear();
    slot.channel.wake();
    this.#queue.unshift(...requeue);
  }

  #clearTimers(job: Job): void {
    if (job.grace === undefined) return;
    clearInterval(job.retry);
    clearTimeout(job.grace);
  }

  #settle(job: Job, outcome: Outcome): void {
    if (job.settled) return;
    job.settled = true;
    if (job.onAbort) job.signal!.removeEventListener("abort", job.onAbort);
    job.cancellation?.onCancel(undefined);
    job.stream?.close();
    if ("error" in outcome) job.reject(outcome.error);
    else job.resolve(outcome.result);
  }

  #emitLogs(
    runnable: PoolRunnable,
    request: RequestInfo | undefined,
    ident: number,
    logs: JobLog[],
    droppedLogs: number,
  ): void {
    const fields = { runnable: runnable.name, ident, requestId: request?.id };
    for (const { level, message } of logs) {
      this.#log(runnable, LEVELS[level] ?? "info", message, fields);
    }
    if (droppedLogs > 0) {
      const text = `${droppedLogs} more log messages of this job were dropped ` +
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

/** `reply`, or an error reply if it is more than a host call's reply can carry. */
function fitReply(reply: Reply): Reply {
  let length = 0;
  for (const part of reply instanceof Uint8Array ? [reply] : reply) length += part.length;
  if (length <= MAX_CALL_BYTES) return reply;
  return errorReply(
    `the answer of ${length - 1} bytes is larger than a host call carries ` +
      `(${MAX_CALL_BYTES - 1} bytes)`,
  );
}
