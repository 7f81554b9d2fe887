/**
 * A Wasm worker of a {@linkcode RunnablePool}: takes batches of jobs from its shared-memory
 * channel (_job_channel.ts), runs them one at a time, and answers every record of a batch exactly
 * once. It keeps one instance per runnable and, once a job is answered, resets it to its state
 * after initialisation (or replaces it) for the next job: no job sees what another wrote
 * (_host.ts).
 *
 * Between batches it waits with `Atomics.waitAsync`: never a blocking wait, so messages
 * (modules, payloads) keep arriving. When batches have been coming close together it first polls
 * the channel for up to {@linkcode SPIN_MS}.
 *
 * @module
 */

import { JobState, randomIdent, RunnableInstance } from "./_host.ts";
import {
  CALL_TIMEOUT_MS,
  clock,
  type JobRecord,
  STREAMED_BODY,
  WorkerChannel,
} from "./_job_channel.ts";
import { INPUT_CALL } from "./_input_call.ts";
import type { FromWorker, RunnableSpec, ToWorker } from "./_protocol.ts";
import type { RequestInfo, RunResult } from "./runnable.ts";

/**
 * How long a worker polls its channel after a batch before it sleeps, if the previous batch came
 * within that time of the one before: a pool that answers a job and hands over the next that
 * fast saves the worker a wakeup (~10 µs). Polling only on that sign keeps the worker from
 * burning a core the pool's thread and other processes need when batches come further apart.
 */
export const SPIN_MS = 0.05;

// The worker global scope (lib "deno.worker"), typed here so this file checks with the
// rest of src/ under the default window lib.
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
};

interface Payload {
  input: Uint8Array;
  request: RequestInfo | undefined;
}

const modules = new Map<number, { spec: RunnableSpec; module: WebAssembly.Module }>();
const instances = new Map<number, RunnableInstance>();
/** Inputs and requests of BY_MESSAGE records, by job id. */
const payloads = new Map<number, Payload>();
/** Job ids of BY_MESSAGE records skipped before their payload arrived. */
const unwanted = new Set<number>();
let channel: WorkerChannel | undefined;
/** Set while the next record waits for a message (its module or payload). */
let stalled = false;
/** When the last batch was answered ({@linkcode clock}). */
let answeredAt = -Infinity;
/** How many batches in a row came within SPIN_MS of the answer before: at 2, poll. */
let closeInARow = 0;

scope.onmessage = (event) => {
  const message = event.data;
  switch (message.kind) {
    case "channel":
      channel = new WorkerChannel(message.buffer);
      scope.postMessage({ kind: "ready" });
      idle();
      return;
    case "load":
      modules.set(message.spec.key, { spec: message.spec, module: message.module });
      break;
    case "forget":
      modules.delete(message.key);
      instances.delete(message.key);
      break;
    case "payload":
      if (!unwanted.delete(message.jobId)) payloads.set(message.jobId, message);
      break;
  }
  if (stalled) {
    stalled = false;
    serve();
  }
};

/** Runs records until the batch is answered and no next one comes soon, or one stalls. */
function serve(): void {
  const ch = channel!;
  for (;;) {
    while (ch.more) {
      if (!step(ch)) {
        stalled = true;
        return;
      }
    }
    answeredAt = clock();
    if (closeInARow >= 2 && !ch.pending()) {
      ch.spin(true);
      const until = performance.now() + SPIN_MS;
      while (!ch.pending() && performance.now() < until) {
        // Poll: the next batch often comes within microseconds.
      }
      ch.spin(false);
    }
    if (!ch.pending()) return idle();
    begin(ch);
  }
}

function begin(ch: WorkerChannel): void {
  ch.begin();
  // From the answer to the next batch, whether this thread slept meanwhile or not.
  closeInARow = ch.published - answeredAt < SPIN_MS ? closeInARow + 1 : 0;
}

/** Sleeps until the next batch, without blocking the event loop. */
function idle(): void {
  const ch = channel!;
  const wait = ch.waitBatch();
  if (!wait.async) {
    begin(ch);
    serve();
    return;
  }
  wait.value.then(() => {
    if (!ch.pending()) return idle();
    begin(ch);
    serve();
  });
}

/** Answers the next record; false if it needs a message that has not arrived. */
function step(ch: WorkerChannel): boolean {
  const record = ch.peek();
  if (ch.taken()) {
    skip(ch, record);
    return true;
  }
  let payload: Payload | undefined = record;
  if (record.byMessage) payload = payloads.get(record.jobId);
  // The pool sent these before the record: wait for them.
  if (!modules.has(record.key) || !payload) return false;
  if (!ch.claim()) {
    skip(ch, record);
    return true;
  }
  payloads.delete(record.jobId);
  const streamed = record.streamedSize;
  let request = payload.request;
  // A streamed input is the request's body, which the instance's memory holds.
  if (streamed !== undefined && request && record.byMessage) {
    request = { ...request, body: STREAMED_BODY };
  }
  const job = new JobState(randomIdent(), request, {
    keepsLogs: record.keepsLogs,
    hostCall: (call, timeoutMs) => ch.call(call, timeoutMs),
    readInput: streamed === undefined ? undefined : inputReader(ch, record.key),
  });
  const instance = instanceOf(record.key);
  const result = typeof instance === "string"
    ? failed(instance)
    : instance.run(record.jobId, job, streamed ?? payload.input);
  if (!ch.answer(record.jobId, job.ident, result, job.logs, job.droppedLogs)) {
    // Too large for the channel: by message, then the record says so.
    const transfer = result.ok ? [result.output.buffer as ArrayBuffer] : [];
    scope.postMessage({
      kind: "done",
      jobId: record.jobId,
      ident: job.ident,
      result,
      logs: job.logs,
      droppedLogs: job.droppedLogs,
    }, transfer);
    ch.posted(record.jobId);
  }
  if (typeof instance !== "string") renew(record.key, instance);
  return true;
}

/** Pulls the next chunk of a streamed input: a view of the channel's reply. */
function inputReader(ch: WorkerChannel, key: number): () => Uint8Array {
  // The pool answers within the job's time limit, or stops the job: wait a margin longer.
  const timeoutMs = modules.get(key)!.spec.timeoutMs + CALL_TIMEOUT_MS;
  return () => ch.callView(INPUT_CALL, timeoutMs);
}

/** Resets the instance for the next job, after the answer: the caller does not wait for it. */
function renew(key: number, instance: RunnableInstance): void {
  const next = instance.reset();
  if (next === instance) return;
  if (next) adopt(key, next);
  else instances.delete(key);
}

/** Makes `instance` the one that runs key's jobs; the pool gets its interrupt word first. */
function adopt(key: number, instance: RunnableInstance): void {
  instances.set(key, instance);
  scope.postMessage({ kind: "instance", key, interrupt: instance.interruptBuffer });
}

function skip(ch: WorkerChannel, record: JobRecord): void {
  if (record.byMessage && !payloads.delete(record.jobId)) unwanted.add(record.jobId);
  ch.skip(record.jobId);
}

/** The instance that runs key's jobs, made if need be; or why it could not be made. */
function instanceOf(key: number): RunnableInstance | string {
  let instance = instances.get(key);
  if (instance) return instance;
  const loaded = modules.get(key)!;
  try {
    instance = new RunnableInstance(loaded.spec, loaded.module);
  } catch (error) {
    return `runnable "${loaded.spec.name}" could not be instantiated: ${error}`;
  }
  adopt(key, instance);
  return instance;
}

function failed(message: string): RunResult {
  return { ok: false, code: 500, message };
}
