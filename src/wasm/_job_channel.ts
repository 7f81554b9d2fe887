/**
 * The shared-memory job channel between a {@linkcode RunnablePool} and one of its workers. The
 * pool writes a batch of jobs into a SharedArrayBuffer, the worker writes each job's answer back:
 * a job makes no postMessage (no structured clone, no message-port wakeup), only Atomics
 * notifications. Modules, `forget`, and the jobs and answers too large for the buffer still go by
 * message (_protocol.ts).
 *
 * Layout of the buffer (CHANNEL_BYTES, little-endian):
 *
 * | bytes        | content                                                                |
 * | ------------ | ---------------------------------------------------------------------- |
 * | 0..16        | Int32 SEQ, COUNT, DONE, SPINNING                                       |
 * | 16..24       | Float64 PUBLISHED: when the pool published the batch (`clock()`)       |
 * | 64..320      | Int32 STATE of each record (MAX_BATCH of them): QUEUED, RUNNING, TAKEN |
 * | 320..832     | Float64 start time of each record (`clock()`)                          |
 * | 832..JOB_END | job records, one after the other (JOB_BYTES)                           |
 * | JOB_END..    | answer records, one after the other (ANSWER_BYTES)                     |
 * | CALLS..      | one host call or reply: u32 length, u32 skew, then the bytes at skew  |
 *
 * A batch:
 * 1. The pool writes records 0..n-1 with STATE = QUEUED, sets COUNT = n and DONE = 0, then
 *    increments SEQ and notifies it.
 * 2. The worker takes the records in order: it writes the record's start time, claims it with
 *    `compareExchange(STATE, QUEUED, RUNNING)`, runs the job, appends the answer, then sets
 *    DONE to the number of records answered and notifies DONE. A record it could not claim (the
 *    pool took it back) gets a SKIPPED answer.
 * 3. The pool waits on DONE with `Atomics.waitAsync` and reads the answers as they come; once
 *    DONE = COUNT the batch is over and the buffer is free for the next one.
 *
 * SPINNING is 1 while the worker polls SEQ between batches (it takes a batch within
 * microseconds), 0 while it sleeps.
 *
 * The pool takes back a record not yet claimed with `compareExchange(STATE, QUEUED, TAKEN)`: an
 * aborted job, or jobs queued behind a slow one, which another worker may run instead.
 *
 * Job record: u32 size of the record, u32 job id, u32 runnable key, u8 flags; if STREAMED (the
 * worker pulls the input with host calls, _input_call.ts), u32 size of the input; then, unless
 * BY_MESSAGE (the input and request come in a `payload` message), u32 length and the input (empty
 * if STREAMED); then,
 * if HAS_REQUEST, the request: u32 length and the UTF-8 JSON of `[method, url, id, headers,
 * params, stateKeys]`, u32 length and the body (absent if BODY_IS_INPUT: the input's, or
 * with STREAMED the instance's memory holds it), and u32 length and the
 * bytes of each state value in the order of `stateKeys`. NO_LOGS: nobody reads the job's logs,
 * its answer carries none.
 *
 * Answer record: u32 job id, u8 kind, u32 ident; for OK u32 length and the output and a string
 * (the JSON of the response headers, empty if none), for ERROR i32 code and a string; then u32 log count, u32 dropped logs, and each log as u8 level and a
 * string. A string is u32 length and UTF-8. A SKIPPED answer is the id and kind alone; a POSTED
 * one (too large for the buffer) says the answer comes in a `done` message.
 *
 * Host calls: a job may need the main thread synchronously (`env.cache_get` reads the pool's
 * cache, `env.fetch_url` waits for the pool's asynchronous `fetch`). The worker writes the call into CALLS, sets CALL_ANSWERED = 0, sets the CALLING bit of
 * DONE and notifies DONE, then blocks in `Atomics.wait` on CALL_ANSWERED. The pool, which waits
 * on DONE while a batch is out, sees DONE change (no wakeup is lost: the value differs from the
 * one it waits on), writes the reply into CALLS, clears the bit, sets CALL_ANSWERED = 1 and
 * notifies it. Calls happen only while a record runs, so the worker never sets DONE meanwhile.
 * A call the pool answers asynchronously (a fetch) keeps the bit set until its reply is written;
 * the pool does not wait on DONE meanwhile (its value would differ at once).
 *
 * @module
 */

import type { JobLog } from "./_protocol.ts";
import type { RequestInfo, RunResult } from "./runnable.ts";
import { type ByteAllocator, copyBytes } from "../wire/mod.ts";

/** Most jobs in one batch. */
export const MAX_BATCH = 64;
/** Bytes of job records a batch holds; a larger job goes by message. */
const JOB_BYTES = 256 * 1024;
/** Bytes of answers a batch holds; a larger answer goes by message. */
const ANSWER_BYTES = 256 * 1024;
/** Bytes of one host call or reply (with its u32 length and u32 skew). */
const CALL_BYTES = 1024 * 1024;
/** Where a call's or reply's bytes may start, relative to CALLS: after the length and skew. */
const CALL_DATA = 8;
/** Most bytes of a host call or its reply: the area less the two words and up to 7 of skew. */
export const MAX_CALL_BYTES = CALL_BYTES - CALL_DATA - 8;
/** How long a worker waits for the pool to answer a host call, unless told otherwise. */
export const CALL_TIMEOUT_MS = 5000;

/** Room kept at the end of the answers for SKIPPED and POSTED answers (u32 + u8 each). */
const SHORT_ANSWERS = 5 * MAX_BATCH;

const SEQ = 0;
const COUNT = 1;
const DONE = 2;
const SPINNING = 3;
const CALL_ANSWERED = 6;
/** Set in DONE while a host call waits for the pool. */
const CALLING = 1 << 30;
/** Index of PUBLISHED in a Float64Array over the buffer. */
const PUBLISHED = 2;
const STATES = 64;
const STARTS = STATES + 4 * MAX_BATCH;
const JOBS = STARTS + 8 * MAX_BATCH;
const ANSWERS = JOBS + JOB_BYTES;
const CALLS = ANSWERS + ANSWER_BYTES;
/** Size of a channel's SharedArrayBuffer. */
const CHANNEL_BYTES = CALLS + CALL_BYTES;

// Record states.
const QUEUED = 1;
const RUNNING = 2;
const TAKEN = 3;

const HAS_REQUEST = 1;
const BODY_IS_INPUT = 2;
const BY_MESSAGE = 4;
const NO_LOGS = 8;
const STREAMED = 16;

const KIND_OK = 0;
const KIND_ERROR = 1;
const KIND_SKIPPED = 2;
const KIND_POSTED = 3;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const scratch = new Uint8Array(4096);

/** The time both sides stamp and compare, in ms: the same clock in every thread. */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}

/** Thrown by a writer that ran out of room; caught where the record began. */
class Full extends Error {
  override name = "Full";
}

/**
 * Little-endian writes (bounds-checked: {@linkcode Full} when out of room) and reads (of what the
 * other side wrote) over one region of the buffer.
 */
class Cursor {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  pos = 0;
  end = 0;

  constructor(buffer: SharedArrayBuffer) {
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
  }

  room(size: number): void {
    if (this.pos + size > this.end) throw new Full();
  }

  putU8(value: number): void {
    this.room(1);
    this.bytes[this.pos++] = value;
  }

  putU32(value: number): void {
    this.room(4);
    this.view.setUint32(this.pos, value, true);
    this.pos += 4;
  }

  putBytes(value: Uint8Array): void {
    this.putU32(value.length);
    this.room(value.length);
    this.bytes.set(value, this.pos);
    this.pos += value.length;
  }

  putString(value: string): void {
    const at = this.pos;
    this.putU32(0);
    const { read, written } = encoder.encodeInto(value, this.bytes.subarray(this.pos, this.end));
    if (read !== value.length) throw new Full();
    this.view.setUint32(at, written, true);
    this.pos += written;
  }

  u8(): number {
    return this.bytes[this.pos++]!;
  }

  u32(): number {
    const value = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return value;
  }

  /** A view into the buffer, valid until the region is written again. */
  view8(length: number): Uint8Array {
    const value = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  string(): string {
    const bytes = this.view8(this.u32());
    if (bytes.length > scratch.length) return decoder.decode(bytes.slice());
    // TextDecoder reads shared memory several times slower than its own: copy first.
    scratch.set(bytes);
    return decoder.decode(scratch.subarray(0, bytes.length));
  }
}

/** A job as the pool writes it. */
export interface ChannelJob {
  id: number;
  /** The runnable's key. */
  key: number;
  input: Uint8Array;
  /** Only for runnables that read it. */
  request: RequestInfo | undefined;
  /** `request.body` is `input`: written once. */
  bodyIsInput: boolean;
  /** Someone reads the job's logs. */
  keepsLogs: boolean;
  /** The size of a streamed input (`input` is then empty); undefined for others. */
  streamedSize?: number;
}

/** What a worker reads from its channel for one record. */
export interface JobRecord {
  index: number;
  jobId: number;
  key: number;
  /** The input and request come in a `payload` message. */
  byMessage: boolean;
  /** Someone reads the job's logs. */
  keepsLogs: boolean;
  /** The size of a streamed input, pulled with host calls; undefined if `input` is the input. */
  streamedSize: number | undefined;
  /**
   * Views into the buffer: valid until the batch is answered. With a streamed input whose
   * request body is the input, `request.body` is {@linkcode STREAMED_BODY}.
   */
  input: Uint8Array;
  request: RequestInfo | undefined;
}

/** One answer as the pool reads it. */
export type Answer =
  | {
    jobId: number;
    kind: "result";
    ident: number;
    result: RunResult;
    logs: JobLog[];
    dropped: number;
  }
  | { jobId: number; kind: "skipped" }
  | { jobId: number; kind: "posted" };

/** The pool's end of a channel. */
export class PoolChannel {
  readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(CHANNEL_BYTES);
  readonly #words = new Int32Array(this.buffer);
  readonly #times = new Float64Array(this.buffer, 0, STATES / 8);
  readonly #states = new Int32Array(this.buffer, STATES, MAX_BATCH);
  readonly #starts = new Float64Array(this.buffer, STARTS, MAX_BATCH);
  readonly #jobs = new Cursor(this.buffer);
  readonly #answers = new Cursor(this.buffer);
  #count = 0;

  /** Starts a batch; the previous one must be answered. */
  begin(): void {
    this.#count = 0;
    this.#jobs.pos = JOBS;
    this.#jobs.end = JOBS + JOB_BYTES;
  }

  /**
   * Appends a job; false when it does not fit (nothing is written). With `byMessage`, only the
   * head: the input and request go in a `payload` message (always fits an empty batch).
   */
  add(job: ChannelJob, byMessage = false): boolean {
    if (this.#count >= MAX_BATCH) return false;
    const cursor = this.#jobs;
    const start = cursor.pos;
    const { request, bodyIsInput } = job;
    let flags = job.keepsLogs ? 0 : NO_LOGS;
    if (byMessage) flags |= BY_MESSAGE;
    else if (request) flags |= HAS_REQUEST | (bodyIsInput ? BODY_IS_INPUT : 0);
    const streamed = job.streamedSize !== undefined;
    if (streamed) flags |= STREAMED;
    try {
      cursor.putU32(0); // the record's size, set once known
      cursor.putU32(job.id);
      cursor.putU32(job.key);
      cursor.putU8(flags);
      if (streamed) cursor.putU32(job.streamedSize!);
      if (!byMessage) {
        cursor.putBytes(job.input);
        if (request) {
          const stateKeys = Object.keys(request.state);
          const { method, url, id, headers, params } = request;
          cursor.putString(JSON.stringify([method, url, id, headers, params, stateKeys]));
          if (!bodyIsInput) cursor.putBytes(request.body);
          for (const name of stateKeys) cursor.putBytes(request.state[name]!);
        }
      }
    } catch (error) {
      if (!(error instanceof Full)) throw error;
      cursor.pos = start;
      return false;
    }
    cursor.view.setUint32(start, cursor.pos - start, true);
    this.#states[this.#count++] = QUEUED;
    return true;
  }

  /** Hands the batch to the worker; `now` is the {@linkcode clock}. */
  publish(now: number): void {
    this.#times[PUBLISHED] = now;
    this.#answers.pos = ANSWERS;
    this.#answers.end = ANSWERS + ANSWER_BYTES;
    Atomics.store(this.#words, COUNT, this.#count);
    Atomics.store(this.#words, DONE, 0);
    Atomics.add(this.#words, SEQ, 1);
    Atomics.notify(this.#words, SEQ);
  }

  /** Records of the batch answered so far. */
  answered(): number {
    return Atomics.load(this.#words, DONE) & ~CALLING;
  }

  /** The host call the worker waits on, if any (a view: valid until {@linkcode answerCall}). */
  pendingCall(): Uint8Array | undefined {
    if ((Atomics.load(this.#words, DONE) & CALLING) === 0) return undefined;
    const length = new DataView(this.buffer).getUint32(CALLS, true);
    return new Uint8Array(this.buffer, CALLS + CALL_DATA, Math.min(length, MAX_CALL_BYTES));
  }

  /**
   * Answers the pending host call with `reply`, or the concatenation of its parts (a chunk of
   * input goes in without being copied first); a reply longer than {@linkcode MAX_CALL_BYTES} is
   * cut.
   *
   * The reply starts 0 to 7 bytes into its area (the skew) so that its largest part lands at the
   * same offset modulo 8 as in its own buffer: V8 copies to and from shared memory word by word
   * only when both ends are equally aligned, byte by byte otherwise, 5 times slower (measured:
   * 1 MiB in 61 against 300 µs).
   */
  answerCall(reply: Uint8Array | readonly Uint8Array[]): void {
    const parts = reply instanceof Uint8Array ? [reply] : reply;
    let largest = 0;
    let before = 0;
    for (let i = 0, at = 0; i < parts.length; at += parts[i]!.length, i++) {
      if (parts[i]!.length > parts[largest]!.length) {
        largest = i;
        before = at;
      }
    }
    const start = CALLS + CALL_DATA;
    const skew = (parts[largest]!.byteOffset - (start + before)) & 7;
    const bytes = new Uint8Array(this.buffer, start + skew, MAX_CALL_BYTES);
    let length = 0;
    for (const part of parts) {
      const taken = part.subarray(0, MAX_CALL_BYTES - length);
      bytes.set(taken, length);
      length += taken.length;
    }
    const view = new DataView(this.buffer);
    view.setUint32(CALLS, length, true);
    view.setUint32(CALLS + 4, skew, true);
    Atomics.and(this.#words, DONE, ~CALLING);
    Atomics.store(this.#words, CALL_ANSWERED, 1);
    Atomics.notify(this.#words, CALL_ANSWERED);
  }

  /** Waits until more than `seen` records are answered (or {@linkcode PoolChannel.wake}). */
  waitAnswers(seen: number): ReturnType<typeof Atomics.waitAsync> {
    return Atomics.waitAsync(this.#words, DONE, seen);
  }

  /** Ends any wait on this channel: the worker is gone. */
  wake(): void {
    Atomics.notify(this.#words, DONE);
  }

  /**
   * Reads the next answer; call only while fewer answers were read than {@linkcode answered}.
   *
   * @param allocOutput makes the array an output is copied into (default: a new one)
   */
  read(allocOutput?: ByteAllocator): Answer {
    const cursor = this.#answers;
    const jobId = cursor.u32();
    const kind = cursor.u8();
    if (kind === KIND_SKIPPED) return { jobId, kind: "skipped" };
    if (kind === KIND_POSTED) return { jobId, kind: "posted" };
    const ident = cursor.u32();
    let result: RunResult;
    if (kind === KIND_OK) {
      // A copy of its own for the caller: the buffer is reused by the next batch.
      const length = cursor.u32();
      result = {
        ok: true,
        output: copyBytes(cursor.bytes.subarray(cursor.pos, cursor.pos + length), allocOutput),
      };
      cursor.pos += length;
      const headers = cursor.string();
      if (headers !== "") result.headers = JSON.parse(headers) as Record<string, string>;
    } else {
      const code = cursor.view.getInt32(cursor.pos, true);
      cursor.pos += 4;
      result = { ok: false, code, message: cursor.string() };
    }
    const count = cursor.u32();
    const dropped = cursor.u32();
    const logs: JobLog[] = [];
    for (let i = 0; i < count; i++) logs.push({ level: cursor.u8(), message: cursor.string() });
    return { jobId, kind: "result", ident, result, logs, dropped };
  }

  /** Whether the worker is polling for the next batch rather than sleeping. */
  spinning(): boolean {
    return Atomics.load(this.#words, SPINNING) === 1;
  }

  /** Takes back record `index` if the worker has not claimed it; true if taken. */
  take(index: number): boolean {
    return Atomics.compareExchange(this.#states, index, QUEUED, TAKEN) === QUEUED;
  }

  /** Whether the worker claimed record `index` (it runs, or ran). */
  claimed(index: number): boolean {
    return Atomics.load(this.#states, index) === RUNNING;
  }

  /** When the worker started record `index` (see {@linkcode clock}); valid once claimed. */
  started(index: number): number {
    return this.#starts[index]!;
  }
}

/** The worker's end of a channel. */
export class WorkerChannel {
  readonly #words: Int32Array;
  readonly #times: Float64Array;
  readonly #states: Int32Array;
  readonly #starts: Float64Array;
  readonly #jobs: Cursor;
  readonly #answers: Cursor;
  #seq = 0;
  #count = 0;
  #next = 0;

  constructor(buffer: SharedArrayBuffer) {
    this.#words = new Int32Array(buffer);
    this.#times = new Float64Array(buffer, 0, STATES / 8);
    this.#states = new Int32Array(buffer, STATES, MAX_BATCH);
    this.#starts = new Float64Array(buffer, STARTS, MAX_BATCH);
    this.#jobs = new Cursor(buffer);
    this.#answers = new Cursor(buffer);
  }

  /** Whether the pool published a batch not yet taken with {@linkcode WorkerChannel.begin}. */
  pending(): boolean {
    return Atomics.load(this.#words, SEQ) !== this.#seq;
  }

  /** Tells the pool whether this worker polls for the next batch. */
  spin(on: boolean): void {
    Atomics.store(this.#words, SPINNING, on ? 1 : 0);
  }

  /** Resolves when the pool publishes the next batch (maybe at once). */
  waitBatch(): ReturnType<typeof Atomics.waitAsync> {
    return Atomics.waitAsync(this.#words, SEQ, this.#seq);
  }

  /** Takes the batch the pool published. */
  begin(): void {
    this.#seq = Atomics.load(this.#words, SEQ);
    this.#count = Atomics.load(this.#words, COUNT);
    this.#next = 0;
    this.#jobs.pos = JOBS;
    this.#jobs.end = JOBS + JOB_BYTES;
    this.#answers.pos = ANSWERS;
    this.#answers.end = ANSWERS + ANSWER_BYTES - SHORT_ANSWERS;
  }

  /** When the pool published the batch taken last ({@linkcode clock}). */
  get published(): number {
    return this.#times[PUBLISHED]!;
  }

  /** Whether records of the batch remain. */
  get more(): boolean {
    return this.#next < this.#count;
  }

  /** Whether the pool took back the next record. */
  taken(): boolean {
    return Atomics.load(this.#states, this.#next) === TAKEN;
  }

  /** Reads the next record without moving past it. */
  peek(): JobRecord {
    const cursor = this.#jobs;
    const start = cursor.pos;
    cursor.pos += 4;
    const jobId = cursor.u32();
    const key = cursor.u32();
    const flags = cursor.u8();
    const streamedSize = flags & STREAMED ? cursor.u32() : undefined;
    let input: Uint8Array = EMPTY;
    let request: RequestInfo | undefined;
    if (!(flags & BY_MESSAGE)) {
      input = cursor.view8(cursor.u32());
      if (flags & HAS_REQUEST) {
        const [method, url, id, headers, params, stateKeys] = JSON.parse(cursor.string()) as [
          string,
          string,
          string,
          Record<string, string>,
          Record<string, string>,
          string[],
        ];
        const body = flags & BODY_IS_INPUT
          ? (streamedSize === undefined ? input : STREAMED_BODY)
          : cursor.view8(cursor.u32());
        const state: Record<string, Uint8Array> = {};
        for (const name of stateKeys) state[name] = cursor.view8(cursor.u32());
        request = { method, url, id, body, headers, params, state };
      }
    }
    cursor.pos = start;
    return {
      index: this.#next,
      jobId,
      key,
      byMessage: (flags & BY_MESSAGE) !== 0,
      keepsLogs: (flags & NO_LOGS) === 0,
      streamedSize,
      input,
      request,
    };
  }

  /** Claims the next record, stamped as started now; false if the pool took it back. */
  claim(): boolean {
    this.#starts[this.#next] = clock();
    return Atomics.compareExchange(this.#states, this.#next, QUEUED, RUNNING) === QUEUED;
  }

  /** Answers the next record as skipped. */
  skip(jobId: number): void {
    this.#short(jobId, KIND_SKIPPED);
  }

  /**
   * Answers the next record with its result and logs; false when they do not fit (nothing is
   * written: post them, then {@linkcode WorkerChannel.posted}).
   */
  answer(
    jobId: number,
    ident: number,
    result: RunResult,
    logs: JobLog[],
    dropped: number,
  ): boolean {
    const cursor = this.#answers;
    const start = cursor.pos;
    try {
      cursor.putU32(jobId);
      cursor.putU8(result.ok ? KIND_OK : KIND_ERROR);
      cursor.putU32(ident);
      if (result.ok) {
        cursor.putBytes(result.output);
        cursor.putString(result.headers ? JSON.stringify(result.headers) : "");
      } else {
        cursor.room(4);
        cursor.view.setInt32(cursor.pos, result.code, true);
        cursor.pos += 4;
        cursor.putString(result.message);
      }
      cursor.putU32(logs.length);
      cursor.putU32(dropped);
      for (const { level, message } of logs) {
        cursor.putU8(level);
        cursor.putString(message);
      }
    } catch (error) {
      if (!(error instanceof Full)) throw error;
      cursor.pos = start;
      return false;
    }
    this.#advance();
    return true;
  }

  /**
   * Makes a host call to the pool and blocks until it answers (see the module doc).
   *
   * @param call the call's bytes
   * @param timeoutMs how long to wait for the reply (a fetch waits longer than a cache call)
   * @returns the reply
   * @throws {RangeError} the call is longer than {@linkcode MAX_CALL_BYTES}
   * @throws {Error} the pool did not answer within `timeoutMs`
   */
  call(call: Uint8Array, timeoutMs: number = CALL_TIMEOUT_MS): Uint8Array {
    return this.callView(call, timeoutMs).slice();
  }

  /**
   * {@linkcode WorkerChannel.call}, the reply left in the buffer: a view valid until the next
   * call (a chunk of input is copied from it straight into the instance's memory).
   *
   * @throws {RangeError} the call is longer than {@linkcode MAX_CALL_BYTES}
   * @throws {Error} the pool did not answer within `timeoutMs`
   */
  callView(call: Uint8Array, timeoutMs: number = CALL_TIMEOUT_MS): Uint8Array {
    if (call.length > MAX_CALL_BYTES) {
      throw new RangeError(`a host call of ${call.length} bytes exceeds ${MAX_CALL_BYTES} bytes`);
    }
    const bytes = this.#answers.bytes;
    const view = this.#answers.view;
    view.setUint32(CALLS, call.length, true);
    bytes.set(call, CALLS + CALL_DATA);
    Atomics.store(this.#words, CALL_ANSWERED, 0);
    Atomics.or(this.#words, DONE, CALLING);
    Atomics.notify(this.#words, DONE);
    if (Atomics.wait(this.#words, CALL_ANSWERED, 0, timeoutMs) === "timed-out") {
      Atomics.and(this.#words, DONE, ~CALLING);
      throw new Error(`the pool did not answer a host call within ${timeoutMs} ms`);
    }
    const length = Math.min(view.getUint32(CALLS, true), MAX_CALL_BYTES);
    const start = CALLS + CALL_DATA + (view.getUint32(CALLS + 4, true) & 7);
    return bytes.subarray(start, start + length);
  }

  /** Answers the next record as posted: its answer went in a `done` message. */
  posted(jobId: number): void {
    this.#short(jobId, KIND_POSTED);
  }

  /** A SKIPPED or POSTED answer, in the room kept for them. */
  #short(jobId: number, kind: number): void {
    const cursor = this.#answers;
    const end = cursor.end;
    cursor.end = ANSWERS + ANSWER_BYTES;
    cursor.putU32(jobId);
    cursor.putU8(kind);
    cursor.end = end;
    this.#advance();
  }

  #advance(): void {
    const cursor = this.#jobs;
    cursor.pos += cursor.view.getUint32(cursor.pos, true);
    this.#next++;
    Atomics.store(this.#words, DONE, this.#next);
    Atomics.notify(this.#words, DONE);
  }
}

const EMPTY = new Uint8Array(0);

/**
 * `RequestInfo.body` of a job, in its worker, whose body is its streamed input
 * (_input_call.ts): the body is then read from the instance's memory (_host.ts). Compared by
 * identity.
 */
export const STREAMED_BODY: Uint8Array = new Uint8Array(0);

/** Bytes of the worker's staging buffer for {@linkcode copyFromShared}. */
const STAGE_BYTES = 64 * 1024;
let stage: Uint8Array | undefined;

/**
 * `target.set(source, offset)` for a `source` in shared memory (a reply's view), fast whatever
 * the alignment: when `source` and its destination differ modulo 8, V8 would copy byte by byte
 * (see {@linkcode PoolChannel.answerCall}), so the bytes go through a small unshared buffer,
 * equally aligned with `source`: two word-by-word copies cost less than half of one bytewise.
 */
export function copyFromShared(target: Uint8Array, offset: number, source: Uint8Array): void {
  const skew = (source.byteOffset - (target.byteOffset + offset)) & 7;
  if (skew === 0 || source.length < 256) {
    target.set(source, offset);
    return;
  }
  stage ??= new Uint8Array(STAGE_BYTES + 8);
  const at = source.byteOffset & 7;
  for (let done = 0; done < source.length; done += STAGE_BYTES) {
    const piece = source.subarray(done, done + STAGE_BYTES);
    stage.set(piece, at);
    target.set(stage.subarray(at, at + piece.length), offset + done);
  }
}
