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
  const chunks = body instanceof Uint8Array ? [body] : body;
  for await (const chunk of chunks) {
    for (let at = 0; at < chunk.length;) {
      if (!wanted()) return;
      const n = await window.reserve(Math.min(MAX_CHUNK_LEN, chunk.length - at));
      if (!wanted()) return;
      await send(encodeBody(id, chunk.subarray(at, at + n), false));
      at += n;
    }
  }
  if (wanted()) await send(encodeBody(id, EMPTY, true));
}
