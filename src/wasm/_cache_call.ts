/**
 * The wire form of a job's cache calls, from its worker to the pool's {@linkcode RunnableCache}
 * on the main thread (carried by the channel's host call, _job_channel.ts).
 *
 * @module
 */

import type { RunnableCache } from "./runnable_cache.ts";

const OP_GET = 1;
const OP_SET = 2;
const REPLY_VALUE = 0;
const REPLY_ERROR = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A cache call as a worker sends it over its channel: u8 op, u32 key length, the key's UTF-8;
 * for SET then i32 ttl and the value (the rest). A reply: u8 status (VALUE or ERROR) and the
 * value or the UTF-8 error message (the rest). Little-endian.
 */
export function encodeCacheCall(
  key: Uint8Array,
  set?: { value: Uint8Array; ttlSeconds: number },
): Uint8Array {
  const call = new Uint8Array(5 + key.length + (set ? 4 + set.value.length : 0));
  const view = new DataView(call.buffer);
  call[0] = set ? OP_SET : OP_GET;
  view.setUint32(1, key.length, true);
  call.set(key, 5);
  if (set) {
    view.setInt32(5 + key.length, set.ttlSeconds, true);
    call.set(set.value, 9 + key.length);
  }
  return call;
}

/** Runs a call of {@linkcode encodeCacheCall} against `cache`; returns the reply. */
export function serveCacheCall(cache: RunnableCache, call: Uint8Array): Uint8Array {
  const view = new DataView(call.buffer, call.byteOffset, call.byteLength);
  const keyLength = view.getUint32(1, true);
  const key = decoder.decode(call.subarray(5, 5 + keyLength));
  if (call[0] === OP_SET) {
    const ttl = view.getInt32(5 + keyLength, true);
    const stored = cache.set(key, call.subarray(9 + keyLength), ttl);
    return stored ? Uint8Array.of(REPLY_VALUE) : reply(REPLY_ERROR, "value larger than the cache");
  }
  const value = cache.get(key);
  if (!value) return reply(REPLY_ERROR, "key not found");
  const answer = new Uint8Array(1 + value.length);
  answer.set(value, 1);
  return answer;
}

/** The value or error message of a reply of {@linkcode serveCacheCall}. */
export function decodeCacheReply(reply: Uint8Array): { value: Uint8Array } | { error: string } {
  if (reply[0] === REPLY_VALUE) return { value: reply.slice(1) };
  return { error: decoder.decode(reply.subarray(1)) };
}

function reply(status: number, message: string): Uint8Array {
  const bytes = encoder.encode(message);
  const answer = new Uint8Array(1 + bytes.length);
  answer[0] = status;
  answer.set(bytes, 1);
  return answer;
}
