/**
 * A streamed input ({@linkcode StreamedInput}): its worker pulls it chunk by chunk from the pool
 * on the main thread, through the channel's host call (_job_channel.ts), and writes each chunk
 * straight into the instance's memory at `ptr + offset`. The main thread holds only the chunk
 * being handed over: it reads the next one from the caller's iterator when the worker asks for
 * it, so whoever produces the chunks gets back-pressure.
 *
 * The call is the single byte OP_INPUT. The reply (_call_reply.ts) carries the next at most
 * {@linkcode MAX_INPUT_CHUNK} bytes; an empty value is the end of the input, which the worker
 * asks for once it holds `size` bytes (so bytes beyond `size` are seen). An error reply fails the
 * job with {@linkcode INPUT_ERROR_CODE}: the input was shorter or longer than `size`, or the
 * iterator threw.
 *
 * @module
 */

import { errorReply, messageOf, VALUE_HEAD, valueReply } from "./_call_reply.ts";
import { MAX_CALL_BYTES } from "./_job_channel.ts";

/**
 * A job's input that arrives in chunks: `size` bytes in all, from `chunks`, which the pool reads
 * only as the job's worker asks for more (see `Runnable.run`).
 */
export interface StreamedInput {
  /** How many bytes `chunks` yields in all; the job fails if it yields more or fewer. */
  readonly size: number;
  /** The bytes, in chunks of any size (a chunk is read before the next is asked for). */
  readonly chunks: AsyncIterable<Uint8Array>;
}

/**
 * Chunks that can also be taken without waiting: `takeReady()` returns one the source holds
 * already, or undefined when it holds none (then `next()` of its iterator waits as usual). An
 * input call's reply then carries every chunk at hand, up to {@linkcode MAX_INPUT_CHUNK} bytes,
 * instead of one: a worker waiting for a large body makes one round trip per reply, not one per
 * chunk (a channel's 64 KiB messages).
 */
export interface ReadyChunks {
  takeReady(): Uint8Array | undefined;
}

/**
 * The first byte of an input call. Other calls: the cache's 1 and 2 (_cache_call.ts), fetch's 3
 * (_fetch_call.ts), graphql's 4 (_graphql_call.ts), the database's 5 (_database_call.ts), static
 * files' 6 (_static_file_call.ts).
 */
const OP_INPUT = 7;
/** Most bytes of input one reply carries (the rest of a larger chunk goes in the next). */
export const MAX_INPUT_CHUNK = MAX_CALL_BYTES - 1;
/** The code of a job whose streamed input was not what it announced, or could not be read. */
export const INPUT_ERROR_CODE = 400;
/** The call a worker makes for the next chunk. */
export const INPUT_CALL: Uint8Array = new Uint8Array([OP_INPUT]);

const END = valueReply(new Uint8Array(0));
const STOPPED = "the job was stopped while it read its input";

/** Whether a host call asks for the next chunk of the job's input. */
export function isInputCall(call: Uint8Array): boolean {
  return call[0] === OP_INPUT && call.length === 1;
}

/** Whether `input` has the shape of a {@linkcode StreamedInput} (its size is not checked). */
export function isStreamedInput(input: unknown): input is StreamedInput {
  if (typeof input !== "object" || input === null) return false;
  const { size, chunks } = input as Partial<StreamedInput>;
  return typeof size === "number" && typeof chunks === "object" && chunks !== null &&
    typeof (chunks as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === "function";
}

/** The pool's side of one job's streamed input: answers the worker's input calls. */
export class InputStream {
  /** Bytes the input announced. */
  readonly size: number;
  readonly #chunks: AsyncIterable<Uint8Array>;
  #iterator: AsyncIterator<Uint8Array> | undefined;
  /** What remains of the chunk being handed over. */
  #rest: Uint8Array | undefined;
  /** Bytes handed over so far. */
  #offset = 0;
  /** Bytes the iterator yielded so far. */
  #received = 0;
  #ended = false;
  #closed = false;

  constructor(input: StreamedInput) {
    this.size = input.size;
    this.#chunks = input.chunks;
  }

  /**
   * The reply to the next input call: at most {@linkcode MAX_INPUT_CHUNK} bytes, as the reply's
   * head and a view of the chunk (the channel copies them, nothing else does), an empty value at
   * the end, or an error. Never rejects; never called again before it settles (the worker waits
   * for each reply).
   */
  async next(): Promise<Uint8Array | readonly Uint8Array[]> {
    try {
      while (this.#rest === undefined) {
        if (this.#closed) return errorReply(STOPPED);
        if (this.#ended) {
          if (this.#offset === this.size) return END;
          return errorReply(
            `the request body was shorter than its announced size: it ended after ` +
              `${this.#offset} of ${this.size} bytes`,
          );
        }
        this.#iterator ??= this.#chunks[Symbol.asyncIterator]();
        const step = await this.#iterator.next();
        if (this.#closed) return errorReply(STOPPED);
        if (step.done) {
          this.#ended = true;
          continue;
        }
        const refused = this.#accept(step.value);
        if (refused) return refused;
      }
      const reply: Uint8Array[] = [VALUE_HEAD];
      let room = MAX_INPUT_CHUNK;
      while (this.#rest !== undefined) {
        const part = this.#rest.subarray(0, room);
        this.#rest = part.length < this.#rest.length ? this.#rest.subarray(part.length) : undefined;
        this.#offset += part.length;
        reply.push(part);
        room -= part.length;
        if (room === 0 || this.#rest !== undefined) break;
        // What the source holds already goes in the same reply.
        const ready = (this.#chunks as Partial<ReadyChunks>).takeReady?.();
        if (ready === undefined) break;
        const refused = this.#accept(ready);
        if (refused) return refused;
      }
      return reply;
    } catch (error) {
      this.#ended = true;
      this.close();
      return errorReply(`the request body could not be read: ${messageOf(error)}`);
    }
  }

  /** Makes `chunk` the one being handed over; an error reply if it breaks the input's rules. */
  #accept(chunk: unknown): Uint8Array | undefined {
    if (!(chunk instanceof Uint8Array)) {
      this.close();
      return errorReply(
        `the request body could not be read: a chunk is ${describe(chunk)}, not a Uint8Array`,
      );
    }
    if (chunk.length === 0) return undefined;
    this.#received += chunk.length;
    if (this.#received > this.size) {
      this.close();
      return errorReply(
        `the request body was longer than its announced size of ${this.size} bytes`,
      );
    }
    this.#rest = chunk;
    return undefined;
  }

  /**
   * Stops reading: later calls answer an error, and the iterator, if started and not done, is
   * told to stop (`return()`, not awaited). Calling it again does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#rest = undefined;
    const iterator = this.#iterator;
    if (!iterator?.return || this.#ended) return;
    try {
      Promise.resolve(iterator.return()).catch(() => {});
    } catch {
      // The producer's own failure to stop: nothing more to do for this job.
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value !== "object") return `a ${typeof value}`;
  return `a ${value.constructor?.name ?? "object"}`;
}
