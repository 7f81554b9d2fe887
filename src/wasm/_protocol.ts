/**
 * Messages between a {@linkcode RunnablePool} and its workers (`_worker.ts`). Structured clone
 * carries them; a compiled `WebAssembly.Module` crosses without being compiled again.
 *
 * pool → worker: `run` (one job; the module rides along the first time a worker sees it),
 * `forget` (a runnable was closed). worker → pool: `ready` (once, at start), `instance` (a new
 * instance's interrupt word, before any of its code runs), `done` (a job's result and logs).
 *
 * @module
 */

import type { RequestInfo, RunResult } from "./runnable.ts";

/** What a worker needs to instantiate a runnable. */
export interface RunnableSpec {
  /** Identifies the runnable within its pool. */
  key: number;
  name: string;
  /** Pages the memory is capped at (already written into the module). */
  maxMemoryPages: number;
}

/** Runs one job. */
export interface RunMessage {
  kind: "run";
  /** Positive int32; the value the job's interrupt word holds while the job runs. */
  jobId: number;
  runnable: RunnableSpec & { module?: WebAssembly.Module };
  input: Uint8Array;
  request?: RequestInfo;
}

/** Drops a runnable's module and instance. */
export interface ForgetMessage {
  kind: "forget";
  key: number;
}

/** Messages to a worker. */
export type ToWorker = RunMessage | ForgetMessage;

/** One `log_msg` call (level as the module passed it). */
export interface JobLog {
  level: number;
  message: string;
}

/** Messages from a worker. */
export type FromWorker =
  | { kind: "ready" }
  | { kind: "instance"; key: number; interrupt: SharedArrayBuffer }
  | {
    kind: "done";
    jobId: number;
    ident: number;
    result: RunResult;
    logs: JobLog[];
    droppedLogs: number;
  };
