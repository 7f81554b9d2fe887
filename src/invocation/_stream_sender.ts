/**
 * Sends an INVOKE or a RESULT with its body under flow control: a body that fits in the first
 * message goes at once (the common case costs nothing more); a longer one, or a stream, goes
 * as the header with an empty chunk, then BODY chunks as the receiver's window allows, then an
 * empty BODY with END.
 *
 * @module
 */

import type { SendWindow } from "./_flow.ts";
import {
  allocateBody,
  encodeBody,
  encodeWithBody,
  INVOKE,
  type InvokeHeader,
  MAX_CHUNK_LEN,
  RESULT,
  type ResultHeader,
} from "./invocation_codec.ts";

/** A body: all of it, or chunks as they come. */
export type OutgoingBody = Uint8Array | AsyncIterable<Uint8Array>;

const EMPTY = new Uint8Array(0);

/**
 * The largest BODY chunk of a stream: MAX_CHUNK_LEN rounded down to a multiple of 8, so that a
 * receiver that joins consecutive chunks (a sat feeding a Wasm instance) finds each equally
 * aligned as the first, and copies it to and from shared memory word by word.
 */
const STREAM_CHUNK_LEN = MAX_CHUNK_LEN & ~7;

/**
 * Sends `header` and `body` as invocation `id`.
 *
 * @param wanted false once the receiver no longer wants the body (cancelled, or answered)
 * @returns once every message is handed to `send`, or the body is no longer wanted
 * @throws what `send`, the body's iterator or the window throw
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
  // Chunks are handed over without waiting for each to be written (the channel keeps their
  // order): the window alone bounds what is in flight, and the next chunk is read meanwhile.
  // Messages are filled to their largest size across the source's chunks (64 KiB chunks would
  // otherwise each take a full message and a tiny one).
  let failure: unknown;
  let last: Promise<void> = Promise.resolve();
  const parts: Uint8Array[] = [];
  let buffered = 0;
  const flush = async (all: boolean) => {
    while (buffered >= STREAM_CHUNK_LEN || (all && buffered > 0)) {
      if (failure !== undefined) throw failure;
      if (!wanted()) return;
      const n = await window.reserve(Math.min(STREAM_CHUNK_LEN, buffered));
      if (!wanted()) return;
      const [message, offset] = allocateBody(id, n, false);
      for (let filled = 0; filled < n;) {
        const part = parts[0]!;
        const take = Math.min(part.length, n - filled);
        message.set(part.subarray(0, take), offset + filled);
        filled += take;
        if (take === part.length) parts.shift();
        else parts[0] = part.subarray(take);
      }
      buffered -= n;
      last = send(message);
      last.catch((error) => (failure ??= error));
    }
  };
  for await (const chunk of body instanceof Uint8Array ? [body] : body) {
    if (chunk.length === 0) continue;
    parts.push(chunk);
    buffered += chunk.length;
    await flush(false);
    if (!wanted()) return;
  }
  await flush(true);
  await last;
  if (failure !== undefined) throw failure;
  if (wanted()) await send(encodeBody(id, EMPTY, true));
}
