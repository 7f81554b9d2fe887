/**
 * Sends an INVOKE or a RESULT with its body under flow control: a body that fits in the first
 * message goes at once (the common case costs nothing more); a longer one, or a stream, goes
 * as the header with an empty chunk, then BODY chunks as the receiver's window allows, then an
 * empty BODY with END.
 *
 * Every BODY message but the last is full (a source's 64 KiB chunks would otherwise each take a
 * full message and a tiny one), and is filled in place in one of a few buffers the stream
 * reuses: once the channel is done with a message (its `send` settled), its buffer takes the
 * next chunk. A {@linkcode BodyFiller} writes into them itself (a BYOB reader could read
 * straight into them; the proxy copies from larger reads of its own); other bodies are copied
 * in once.
 *
 * @module
 */

import { INITIAL_WINDOW, type SendWindow } from "./_flow.ts";
import {
  encodeBody,
  encodeWithBody,
  INVOKE,
  type InvokeHeader,
  MAX_CHUNK_LEN,
  MESSAGE_HEADER_LEN,
  RESULT,
  type ResultHeader,
  writeBodyHeader,
} from "./invocation_codec.ts";

/**
 * A body that writes into the sender's own buffers, where the message carries the bytes: no
 * chunk is allocated per read (an HTTP request body read with a BYOB reader, proxy_handler.ts).
 */
export interface BodyFiller {
  /**
   * Reads bytes into `into`: at least one, unless the body has ended.
   *
   * @returns the bytes read, a view of `into`'s memory, empty at the end. Its `buffer` may be a
   *   new ArrayBuffer (a BYOB read transfers the one it fills): the caller goes on with that.
   */
  fill(into: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>>;
  /** Stops reading: the sender stopped before the end (it failed, or the body is unwanted). */
  close?(): void;
}

/** A body: all of it, chunks as they come, or bytes read into the sender's buffers. */
export type OutgoingBody = Uint8Array | AsyncIterable<Uint8Array> | BodyFiller;

/**
 * The largest BODY chunk of a stream: MAX_CHUNK_LEN rounded down to a multiple of 8, so that a
 * receiver that joins consecutive chunks (a sat feeding a Wasm instance) finds each equally
 * aligned as the first, and copies it to and from shared memory word by word.
 */
const STREAM_CHUNK_LEN = MAX_CHUNK_LEN & ~7;

/**
 * Message buffers a stream keeps for reuse: as many as its window holds in flight, so that in a
 * steady stream no message is allocated (a 64 KiB ArrayBuffer costs Deno about 17 µs).
 */
const SPARE_MESSAGES = Math.ceil(INITIAL_WINDOW / STREAM_CHUNK_LEN);

const EMPTY = new Uint8Array(0);

/**
 * Sends `header` and `body` as invocation `id`.
 *
 * @param wanted false once the receiver no longer wants the body (cancelled, or answered)
 * @returns once every message is handed to `send`, or the body is no longer wanted
 * @throws what `send`, the body's source or the window throw
 */
export async function sendWithBody(
  send: (message: Uint8Array) => Promise<void>,
  message: {
    type: typeof INVOKE | typeof RESULT;
    id: number;
    header: InvokeHeader | ResultHeader;
  },
  body: OutgoingBody,
  window: SendWindow,
  wanted: () => boolean,
): Promise<void> {
  const { type, id, header } = message;
  if (body instanceof Uint8Array) {
    const messages = encodeWithBody(type, id, header, body);
    if (messages.length === 1) return await send(messages[0]!);
  }
  const first = encodeWithBody(type, id, header, EMPTY)[0]!;
  first[1] = 0; // not the end: BODY messages follow
  await send(first);
  const filler = fillerOf(body);
  let ended = false;
  try {
    ended = await sendFilled(send, id, filler, window, wanted);
  } finally {
    if (!ended) filler.close?.();
  }
}

/**
 * The BODY messages of a body, then the END. Messages are handed over without waiting for each
 * to be written (the channel keeps their order): the window alone bounds what is in flight, and
 * the next message is filled meanwhile.
 *
 * @returns whether the body was read to its end
 */
async function sendFilled(
  send: (message: Uint8Array) => Promise<void>,
  id: number,
  body: BodyFiller,
  window: SendWindow,
  wanted: () => boolean,
): Promise<boolean> {
  const spare: ArrayBuffer[] = [];
  let failure: unknown;
  let last: Promise<void> = Promise.resolve();
  for (let ended = false; !ended;) {
    let buffer = spare.pop() ?? new ArrayBuffer(MESSAGE_HEADER_LEN + STREAM_CHUNK_LEN);
    let length = 0;
    while (length < STREAM_CHUNK_LEN) {
      const room = new Uint8Array(buffer, MESSAGE_HEADER_LEN + length, STREAM_CHUNK_LEN - length);
      const read = await body.fill(room);
      buffer = read.buffer;
      if (read.length === 0) {
        ended = true;
        break;
      }
      length += read.length;
    }
    if (failure !== undefined) throw failure;
    if (!wanted()) return ended;
    if (length === 0) break;
    await window.reserveAll(length);
    if (!wanted()) return ended;
    const message = new Uint8Array(buffer, 0, MESSAGE_HEADER_LEN + length);
    writeBodyHeader(message, id, false);
    const done = buffer;
    last = send(message).then(() => {
      if (spare.length < SPARE_MESSAGES) spare.push(done);
    });
    last.catch((error) => (failure ??= error));
  }
  await last;
  if (failure !== undefined) throw failure;
  if (wanted()) await send(encodeBody(id, EMPTY, true));
  return true;
}

/** `body` as a {@linkcode BodyFiller}: bytes and chunks are copied into the sender's buffers. */
function fillerOf(body: OutgoingBody): BodyFiller {
  if (body instanceof Uint8Array) return new ChunkFiller([body][Symbol.iterator]());
  // A Uint8Array has a `fill` method too, of another kind: ruled out above.
  if (typeof (body as Partial<BodyFiller>).fill === "function") return body as BodyFiller;
  return new ChunkFiller((body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]());
}

/** Copies chunks from an iterator into the sender's buffers, a chunk's rest kept for the next. */
class ChunkFiller implements BodyFiller {
  readonly #chunks: Iterator<Uint8Array> | AsyncIterator<Uint8Array>;
  #rest: Uint8Array = EMPTY;

  constructor(chunks: Iterator<Uint8Array> | AsyncIterator<Uint8Array>) {
    this.#chunks = chunks;
  }

  async fill(into: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
    while (this.#rest.length === 0) {
      const step = await this.#chunks.next();
      if (step.done) return into.subarray(0, 0);
      this.#rest = step.value;
    }
    const taken = this.#rest.subarray(0, into.length);
    into.set(taken);
    this.#rest = this.#rest.subarray(taken.length);
    return into.subarray(0, taken.length);
  }

  close(): void {
    this.#rest = EMPTY;
    try {
      Promise.resolve(this.#chunks.return?.()).catch(() => {});
    } catch {
      // The source's own failure to stop: nothing more to do for this body.
    }
  }
}
