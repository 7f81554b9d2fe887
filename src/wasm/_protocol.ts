/**
 * Messages between a {@linkcode RunnablePool} and its workers (`_worker.ts`). Jobs and their
 * answers go through the worker's shared-memory channel (_job_channel.ts); messages carry what
 * cannot or need not be on that hot path. Structured clone carries them; a compiled
 * `WebAssembly.Module` crosses without being compiled again.
 *
 * pool → worker: `channel` (once, first), `load` (a runnable's module, before the first record of
 * it in the channel), `forget` (a runnable was closed; sent only between batches), `payload` (the
 * input and request of a BY_MESSAGE record, too large for the channel; sent before the record;
 * for a streamed input, an empty input and the request without its body).
 * The worker handles messages between batches, or when a record waits for one.
 *
 * worker → pool: `ready` (once it has the channel), `instance` (a new instance's interrupt word,
 * before any of its code runs), `done` (an answer too large for the channel, for a POSTED
 * record).
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
  /** Most time a job may run, in ms (the pool enforces it; a worker bounds its waits by it). */
  timeoutMs: number;
  /**
   * Whether restoring memories and mutable globals resets an instance (the module changes no
   * table and drops no segment); if not, each job gets a fresh instance.
   */
  resettable: boolean;
  /** The secrets `get_secret_value` may read, by name (none if undefined). */
  secrets: Readonly<Record<string, string>> | undefined;
}

/** Messages to a worker. */
export type ToWorker =
  | { kind: "channel"; buffer: SharedArrayBuffer }
  | { kind: "load"; spec: RunnableSpec; module: WebAssembly.Module }
  | { kind: "forget"; key: number }
  | { kind: "payload"; jobId: number; input: Uint8Array; request: RequestInfo | undefined };

/** One `log_msg` call (level as the module passed it). */
export interface JobLog {
  level: number;
  message: string;
}

/** A job's answer sent by message. */
export interface DoneMessage {
  kind: "done";
  jobId: number;
  ident: number;
  result: RunResult;
  logs: JobLog[];
  droppedLogs: number;
}

/** Messages from a worker. */
export type FromWorker =
  | { kind: "ready" }
  | { kind: "instance"; key: number; interrupt: SharedArrayBuffer }
  | DoneMessage;
