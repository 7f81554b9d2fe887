/**
 * Sends an INVOKE or a RESULT with its body under flow control: a body that fits in the first
 * message goes at once (the common case costs nothing more); a longer one, or a stream, goes
 * as the header with an empty chunk, then BODY chunks as the receiver's window allows, then an
 * empty BODY with END.
 *
 * Every BODY message but the last is full (a source's 64 KiB chunks would otherwise each take a
 * full message and a tiny one), and is filled in place in one of a few buffers the stream
 * reuses: once the channel is done with a message (its `send` settled), its buffer takes the
 * next bytes. Each chunk is copied in before the next one is asked for, so a source may hand
 * out views of one buffer it reads into again (the proxy's request bodies, proxy_handler.ts).
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
 * A body: all of it, or chunks as they come. A chunk may be a view of a buffer the source reuses
 * once the next chunk is asked for.
 */
export type OutgoingBody = Uint8Array | AsyncIterable<Uint8Array>;

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
  const chunks = new ChunkCopier(
    body instanceof Uint8Array ? [body][Symbol.iterator]() : body[Symbol.asyncIterator](),
  );
  let ended = false;
  try {
    ended = await sendFilled(send, id, chunks, window, wanted);
  } finally {
    if (!ended) chunks.close();
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
  body: ChunkCopier,
  window: SendWindow,
  wanted: () => boolean,
): Promise<boolean> {
  const spare: ArrayBuffer[] = [];
  let failure: unknown;
  let last: Promise<void> = Promise.resolve();
  for (let ended = false; !ended;) {
    const buffer = spare.pop() ?? new ArrayBuffer(MESSAGE_HEADER_LEN + STREAM_CHUNK_LEN);
    let length = 0;
    while (length < STREAM_CHUNK_LEN) {
      const room = new Uint8Array(buffer, MESSAGE_HEADER_LEN + length, STREAM_CHUNK_LEN - length);
      const copied = await body.copyInto(room);
      if (copied === 0) {
        ended = true;
        break;
      }
      length += copied;
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

/** Copies chunks from an iterator into the sender's buffers, a chunk's rest kept for the next. */
class ChunkCopier {
  readonly #chunks: Iterator<Uint8Array> | AsyncIterator<Uint8Array>;
  #rest: Uint8Array = EMPTY;

  constructor(chunks: Iterator<Uint8Array> | AsyncIterator<Uint8Array>) {
    this.#chunks = chunks;
  }

  /** Copies the next bytes into `into`: at least one, or none at the end of the chunks. */
  async copyInto(into: Uint8Array): Promise<number> {
    while (this.#rest.length === 0) {
      const step = await this.#chunks.next();
      if (step.done) return 0;
      this.#rest = step.value;
    }
    const taken = this.#rest.subarray(0, into.length);
    into.set(taken);
    this.#rest = this.#rest.subarray(taken.length);
    return taken.length;
  }

  /** Stops the source: the sender stopped before the end (it failed, or the body is unwanted). */
  close(): void {
    this.#rest = EMPTY;
    try {
      Promise.resolve(this.#chunks.return?.()).catch(() => {});
    } catch {
      // The source's own failure to stop: nothing more to do for this body.
    }
  }
}
