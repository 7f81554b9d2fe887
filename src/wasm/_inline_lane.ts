/**
 * The inline lane of a {@linkcode RunnablePool}: short jobs of self-contained runnables run on the
 * pool's own thread, with no worker in between.
 *
 * Handing a tiny job to a worker and reading its answer back costs more than the job itself
 * (~35 µs a job in the end-to-end benchmark: the channel's `Atomics.notify`, the `waitAsync`
 * wakeups, the worker's own CPU). A runnable whose imports never need the pool's asynchronous
 * host calls ({@linkcode isInlineable}: `env`'s result, log, request, header, secret and FFI
 * functions and WASI's, no cache, fetch, GraphQL, database or static file) cannot reach anything
 * outside its instance, so its job may run on the pool's thread, in an instance of the lane's own
 * (one per runnable, reset after each job as in a worker).
 *
 * Each job may run for {@linkcode INLINE_BUDGET_MS} (or its time limit, if shorter). The pool's
 * thread is busy meanwhile, so a small watchdog worker enforces it, through the interrupt word
 * every instance exports (_instrument.ts): it reads the running job from a shared control block
 * and writes INTERRUPTED into that job's word once the budget is spent. A job interrupted so, or
 * that took longer than the budget by the pool's clock, leaves no trace (its result and logs are
 * dropped, its instance is reset) and the pool runs the same job in a worker, with the full time
 * limit. Until the watchdog has started, jobs go to workers.
 *
 * Overruns count as strikes against the runnable; {@linkcode INLINE_STRIKES} of them demote it:
 * the lane drops its instance and its jobs go to workers for the pool's life. Each
 * {@linkcode STRIKE_DECAY_JOBS} jobs answered within the budget take one strike back. A runnable
 * that is slow to answer strikes out within its first few jobs (each answered by a worker); one
 * strike alone does not demote, because on a busy machine a job of any runnable now and then
 * overruns through no fault of its own: the OS takes the thread away for a few ms, or V8
 * compiles on it (its first call through a new import wrapper, ~1 ms). In the end-to-end
 * benchmark (2 cores shared by wrk, proxy, relay and sat) helloworld-rs overran about once per
 * 2 000 to 50 000 jobs; when the first overrun demoted, it lost the lane in 2 runs of 3.
 *
 * A runnable's first job on the lane gets {@linkcode INLINE_FIRST_BUDGET_MS} instead: besides the
 * module's start functions, it compiles the functions it calls and takes the instance's snapshot
 * (a copy of its memory: ~1 ms for helloworld-rs's 17 pages), which alone would often spend the
 * 2 ms. Later instances of the runnable (a successor after a reset) get the plain budget.
 *
 * The control block (Int32Array words, all read and written with `Atomics`):
 *
 * | word     | holds                                                                       |
 * | -------- | --------------------------------------------------------------------------- |
 * | JOB      | id of the running inline job, 0 between jobs, CLAIMED once the watchdog took it |
 * | KEY      | key of its runnable                                                         |
 * | START    | when it started: µs of `performance.timeOrigin + performance.now()`, mod 2^32 |
 * | BUDGET   | its budget in µs                                                            |
 * | SLEEPING | 1 while the watchdog sleeps (no job for {@linkcode WATCHDOG_IDLE_MS})         |
 * | RUNS     | inline jobs started (wraps): activity the watchdog may not have seen        |
 * | MAIL     | messages the pool posted to the watchdog (wraps)                            |
 *
 * The pool writes KEY, START and BUDGET, then JOB. The watchdog reads JOB, then the others; once
 * the budget is spent it claims the job with `Atomics.compareExchange(control, JOB, job,
 * CLAIMED)`, and only then interrupts it with `Atomics.compareExchange(word, 0, job,
 * INTERRUPTED)`, which fails if that job is over: a late interrupt never stops a later job. The
 * pool ends a job with `Atomics.exchange(control, JOB, 0)`: one atomic word decides whether the
 * watchdog took the job (then it ran over the budget, whatever it answered) or not (then the
 * watchdog leaves it alone), and the values the watchdog read belong to the job it claims (the
 * pool writes the next job's only after that exchange). Before sleeping the watchdog sets
 * SLEEPING, then reads JOB and RUNS; the pool sets RUNS and JOB, then reads SLEEPING and wakes
 * it if set (sequentially consistent: one of the two sees the other's store, so no wakeup is
 * lost).
 *
 * While jobs come, the watchdog looks every {@linkcode WATCHDOG_POLL_MS} from a loop that blocks
 * in `Atomics.wait` between looks, and at a running job's deadline. Each look costs its thread
 * a wakeup (about 20 µs on a busy 2-core VM); looks by a 1 ms timer cost 4% of the sat's CPU
 * under small-request load, most of it the timers' event-loop turns. A blocked thread takes no
 * messages, so the pool adds 1 to MAIL and notifies it before each `postMessage`; the watchdog
 * waits on MAIL, and once MAIL differs from the messages it handled it leaves the loop for its
 * event loop, takes them, and loops again: an instance's interrupt word reaches it before the
 * first look that may need it.
 *
 * @module
 */

import { JobState, randomIdent, RunnableInstance } from "./_host.ts";
import { INTERRUPTED } from "./_instrument.ts";
import type { PoolRunnable } from "./_pool_internals.ts";
import type { JobLog } from "./_protocol.ts";
import { WASI_FUNCTIONS } from "./_wasi.ts";
import type { RequestInfo, RunResult } from "./runnable.ts";

/** Most time an inline job may run before it is stopped and run in a worker instead. */
export const INLINE_BUDGET_MS = 2;
/** Most time a runnable's first inline job may run (it also compiles and takes the snapshot). */
export const INLINE_FIRST_BUDGET_MS = 10;
/** Overruns of the budget after which a runnable's jobs go to workers for the pool's life. */
export const INLINE_STRIKES = 3;
/** Jobs answered within the budget that take one strike back. */
export const STRIKE_DECAY_JOBS = 1000;
/** Largest input of an inline job: a larger one goes to a worker. */
export const MAX_INLINE_INPUT = 64 * 1024;
/**
 * How often the watchdog looks for a running inline job: the lane's budget, so that it sees a
 * job by the job's deadline at the latest (one it sees earlier, it looks at again at its
 * deadline).
 */
const WATCHDOG_POLL_MS = INLINE_BUDGET_MS;
/** How long the watchdog polls after the last inline job before it sleeps. */
export const WATCHDOG_IDLE_MS = 1000;

const JOB = 0;
const KEY = 1;
const START = 2;
const BUDGET = 3;
const SLEEPING = 4;
const RUNS = 5;
const MAIL = 6;
const CONTROL_WORDS = 8;
/** JOB once the watchdog claimed the job (not a job id: ids are positive). */
const CLAIMED = -1;

/** `env` functions that never leave the instance (each also as `<name>_swift`). */
const LOCAL_ENV_FUNCTIONS: readonly string[] = [
  "return_result",
  "return_error",
  "return_abort",
  "get_ffi_result",
  "add_ffi_var",
  "log_msg",
  "request_get_field",
  "request_set_field",
  "resp_set_header",
  "get_secret_value",
];
const SWIFT_SUFFIX = "_swift";

/**
 * The watchdog worker's code (plain JS: it starts from a `data:` URL, so a bundle needs no file
 * beside it). Messages: `{kind: "control", buffer}` first, then `{kind: "instance", key,
 * buffer}` (an instance's interrupt word) and `{kind: "forget", key}`; it answers `"ready"` once
 * it watches.
 */
const WATCHDOG_SOURCE = `
const [JOB, KEY, START, BUDGET, SLEEPING, RUNS, MAIL] = [${JOB}, ${KEY}, ${START}, ${BUDGET}, \
${SLEEPING}, ${RUNS}, ${MAIL}];
const [INTERRUPTED, CLAIMED] = [${INTERRUPTED}, ${CLAIMED}];
const POLL_MS = ${WATCHDOG_POLL_MS};
const words = new Map();
let control;
let runs = 0;
let activeAt = 0;
let handled = 0;
let asleep = false;
const micros = () => Math.floor((performance.timeOrigin + performance.now()) * 1000) | 0;
self.onmessage = ({ data }) => {
  if (data.kind === "control") {
    control = new Int32Array(data.buffer);
    activeAt = performance.now();
    self.postMessage("ready");
  } else if (data.kind === "instance") words.set(data.key, new Int32Array(data.buffer));
  else if (data.kind === "forget") words.delete(data.key);
  handled = (handled + 1) | 0;
  if (!asleep && handled === Atomics.load(control, MAIL)) watch();
};
// Interrupts the job if its budget is spent; else returns the ms it has left.
function check(job) {
  const key = Atomics.load(control, KEY);
  const start = Atomics.load(control, START);
  const budget = Atomics.load(control, BUDGET);
  const left = budget - ((micros() - start) | 0);
  if (left > 0) return left / 1000;
  if (Atomics.compareExchange(control, JOB, job, CLAIMED) !== job) return 0;
  const word = words.get(key);
  if (word) Atomics.compareExchange(word, 0, job, INTERRUPTED);
  return 0;
}
function watch() {
  for (;;) {
    if (Atomics.load(control, MAIL) !== handled) return;
    const job = Atomics.load(control, JOB);
    const count = Atomics.load(control, RUNS);
    const now = performance.now();
    if (job !== 0 || count !== runs) {
      runs = count;
      activeAt = now;
    }
    const left = job > 0 ? check(job) : 0;
    if (now - activeAt >= ${WATCHDOG_IDLE_MS} && sleep()) return;
    Atomics.wait(control, MAIL, handled, left > 0 && left < POLL_MS ? left : POLL_MS);
  }
}
function sleep() {
  Atomics.store(control, SLEEPING, 1);
  if (Atomics.load(control, JOB) !== 0 || Atomics.load(control, RUNS) !== runs) {
    Atomics.store(control, SLEEPING, 0);
    activeAt = performance.now();
    return false;
  }
  const wait = Atomics.waitAsync(control, SLEEPING, 1);
  if (!wait.async) {
    // Woken already: watch on.
    Atomics.store(control, SLEEPING, 0);
    activeAt = performance.now();
    return false;
  }
  asleep = true;
  wait.value.then(wake);
  return true;
}
function wake() {
  Atomics.store(control, SLEEPING, 0);
  asleep = false;
  activeAt = performance.now();
  if (handled === Atomics.load(control, MAIL)) watch();
}
`;

/** One inline job's answer, as a worker would give it. */
export interface InlineAnswer {
  ident: number;
  result: RunResult;
  logs: JobLog[];
  droppedLogs: number;
}

/**
 * Whether every import of the (instrumented) module stays inside its instance: `env` functions
 * of {@linkcode LOCAL_ENV_FUNCTIONS} and `wasi_snapshot_preview1` functions (none calls the
 * pool, _wasi.ts). The cache, fetch, GraphQL, database and static-file calls, and anything
 * unknown, need the pool's asynchronous host calls, which its own thread cannot wait for.
 *
 * @param module the instrumented module
 * @returns whether its jobs may run on the pool's thread
 */
export function isInlineable(module: WebAssembly.Module): boolean {
  for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
    if (kind !== "function") return false;
    if (from === "wasi_snapshot_preview1") {
      if (!WASI_FUNCTIONS.includes(name)) return false;
      continue;
    }
    const base = name.endsWith(SWIFT_SUFFIX) ? name.slice(0, -SWIFT_SUFFIX.length) : name;
    if (from !== "env" || !LOCAL_ENV_FUNCTIONS.includes(base)) return false;
  }
  return true;
}

/** Options of {@linkcode InlineLane}. */
export interface InlineLaneOptions {
  /** The watchdog worker's permissions: the pool's `workerPermissions`. */
  workerPermissions: "inherit" | "none";
}

/** Runs eligible jobs on the calling thread, within {@linkcode INLINE_BUDGET_MS} each. */
export class InlineLane {
  readonly #permissions: "inherit" | "none";
  /** Each runnable's instance on this thread, by key. */
  readonly #instances = new Map<number, RunnableInstance>();
  /** Runnables whose job ran over the budget: their jobs go to workers from then on. */
  readonly #demoted = new Set<number>();
  /** Runnables that had their first job here. */
  readonly #warm = new Set<number>();
  /** Each runnable that overran the budget: its strikes, and its jobs within it since. */
  readonly #strikes = new Map<number, { strikes: number; clean: number }>();
  #control: Int32Array<SharedArrayBuffer> | undefined;
  #watchdog: Worker | undefined;
  /** The watchdog watches: only then may a job run here. */
  #ready = false;
  #closed = false;

  /**
   * Makes a lane; the watchdog starts with the first eligible job.
   *
   * @param options the watchdog's permissions
   */
  constructor(options: InlineLaneOptions) {
    this.#permissions = options.workerPermissions;
  }

  /**
   * Whether a job of `runnable` with an input of `size` bytes may run here now; starts the
   * watchdog if need be (jobs go to workers until it is up).
   *
   * @param runnable the job's runnable
   * @param size its input's size
   * @returns whether {@linkcode InlineLane.run} may be called
   */
  accepts(runnable: PoolRunnable, size: number): boolean {
    if (!runnable.inlineable || size > MAX_INLINE_INPUT || this.#closed) return false;
    if (this.#demoted.has(runnable.key)) return false;
    if (!this.#watchdog) this.#startWatchdog();
    return this.#ready;
  }

  /**
   * Runs one job here, now, if it fits the budget.
   *
   * @param runnable the job's runnable ({@linkcode InlineLane.accepts} said yes)
   * @param jobId the pool's id of the job
   * @param input the input
   * @param request the request it serves
   * @returns the job's answer; undefined if it ran over the budget (or its instance could not be
   *   made): the job had no effect, run it in a worker (the lane may have demoted the runnable)
   */
  run(
    runnable: PoolRunnable,
    jobId: number,
    input: Uint8Array,
    request: RequestInfo | undefined,
  ): InlineAnswer | undefined {
    const key = runnable.key;
    const instance = this.#instanceOf(runnable);
    if (!instance) return undefined;
    // A copy: request_set_field changes the job's request, not the caller's.
    const own = runnable.readsRequest && request ? { ...request } : undefined;
    const job = new JobState(randomIdent(), own, {
      keepsLogs: runnable.log !== undefined,
      allocOutput: runnable.allocOutput,
    });
    const first = !this.#warm.has(key);
    this.#warm.add(key);
    const budgetMs = Math.min(
      first ? INLINE_FIRST_BUDGET_MS : INLINE_BUDGET_MS,
      runnable.timeoutMs,
    );
    const control = this.#control!;
    const started = performance.now();
    Atomics.add(control, RUNS, 1);
    Atomics.store(control, KEY, key);
    Atomics.store(control, START, micros(started));
    Atomics.store(control, BUDGET, Math.ceil(budgetMs * 1000));
    Atomics.store(control, JOB, jobId);
    if (Atomics.load(control, SLEEPING) !== 0) {
      Atomics.store(control, SLEEPING, 0);
      Atomics.notify(control, SLEEPING);
    }
    const result = instance.run(jobId, job, input);
    const elapsed = performance.now() - started;
    const record = this.#strikes.get(key);
    if (Atomics.exchange(control, JOB, 0) !== jobId || elapsed > budgetMs) {
      const strikes = (record?.strikes ?? 0) + 1;
      if (strikes >= INLINE_STRIKES) {
        this.#demoted.add(key);
        this.#drop(key);
      } else {
        this.#strikes.set(key, { strikes, clean: 0 });
        this.#renew(key, instance);
      }
      return undefined;
    }
    if (record && ++record.clean === STRIKE_DECAY_JOBS) {
      if (--record.strikes === 0) this.#strikes.delete(key);
      else record.clean = 0;
    }
    this.#renew(key, instance);
    return { ident: job.ident, result, logs: job.logs, droppedLogs: job.droppedLogs };
  }

  /**
   * Drops the instance of a closed runnable.
   *
   * @param key the runnable's key
   */
  release(key: number): void {
    this.#drop(key);
    this.#demoted.delete(key);
    this.#warm.delete(key);
    this.#strikes.delete(key);
  }

  /** Stops the watchdog and drops every instance; no job runs here any more. */
  close(): void {
    this.#closed = true;
    this.#ready = false;
    this.#instances.clear();
    this.#watchdog?.terminate();
    this.#watchdog = undefined;
  }

  #startWatchdog(): void {
    const options: WorkerOptions & { deno?: { permissions: "none" } } = { type: "module" };
    if (this.#permissions === "none") options.deno = { permissions: "none" };
    const url = "data:application/javascript," + encodeURIComponent(WATCHDOG_SOURCE);
    const watchdog = new Worker(url, options);
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    this.#watchdog = watchdog;
    this.#control = control;
    watchdog.onmessage = () => {
      if (this.#watchdog === watchdog) this.#ready = true;
    };
    watchdog.onerror = (event) => {
      // Without a watchdog nothing may run here: every job goes to the workers.
      event.preventDefault();
      this.#ready = false;
      this.#closed = true;
      this.#instances.clear();
      watchdog.terminate();
    };
    // The watchdog counts the messages it handled against MAIL, this one included.
    Atomics.store(control, MAIL, 1);
    watchdog.postMessage({ kind: "control", buffer: control.buffer });
  }

  /** Sends the watchdog a message; it stops polling to take it (see WATCHDOG_SOURCE). */
  #tell(
    message: { kind: "instance"; key: number; buffer: SharedArrayBuffer } | {
      kind: "forget";
      key: number;
    },
  ): void {
    const control = this.#control!;
    Atomics.add(control, MAIL, 1);
    Atomics.notify(control, MAIL);
    this.#watchdog!.postMessage(message);
  }

  /** The runnable's instance here, made if need be; undefined (and demoted) if it cannot be. */
  #instanceOf(runnable: PoolRunnable): RunnableInstance | undefined {
    let instance = this.#instances.get(runnable.key);
    if (instance) return instance;
    try {
      instance = new RunnableInstance(runnable, runnable.module);
    } catch {
      // A worker makes its own and reports why it failed.
      this.#demoted.add(runnable.key);
      return undefined;
    }
    this.#adopt(runnable.key, instance);
    return instance;
  }

  /** Makes `instance` the one that runs key's jobs; the watchdog gets its interrupt word. */
  #adopt(key: number, instance: RunnableInstance): void {
    this.#instances.set(key, instance);
    this.#tell({ kind: "instance", key, buffer: instance.interruptBuffer });
  }

  /** Resets the instance for the next job, as a pool worker does once a job is answered. */
  #renew(key: number, instance: RunnableInstance): void {
    const next = instance.reset();
    if (next === instance) return;
    if (next) this.#adopt(key, next);
    else this.#drop(key);
  }

  #drop(key: number): void {
    if (this.#instances.delete(key) && this.#watchdog) this.#tell({ kind: "forget", key });
  }
}

/** `performance.timeOrigin + now` in µs, modulo 2^32 (what the watchdog compares). */
function micros(now: number): number {
  return Math.floor((performance.timeOrigin + now) * 1000) | 0;
}
