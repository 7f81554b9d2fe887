/**
 * The wire form of a job's cache calls, from its worker to the pool's {@linkcode CacheBackend}
 * on the main thread (carried by the channel's host call, _job_channel.ts). The backend may answer
 * asynchronously (a Redis cache): the worker waits for the reply either way.
 *
 * @module
 */

import { errorReply, messageOf, valueReply } from "./_call_reply.ts";
import type { CacheBackend } from "./host_services.ts";

/** The first byte of a `cache_get` call (other calls: _fetch_call.ts lists them). */
export const OP_CACHE_GET = 1;
/** The first byte of a `cache_set` call. */
export const OP_CACHE_SET = 2;
const decoder = new TextDecoder();
const STORED = new Uint8Array(0);

/**
 * A cache call as a worker sends it over its channel: u8 op, u32 key length, the key's UTF-8;
 * for SET then i32 ttl and the value (the rest). The reply: _call_reply.ts. Little-endian.
 */
export function encodeCacheCall(
  key: Uint8Array,
  set?: { value: Uint8Array; ttlSeconds: number },
): Uint8Array {
  const call = new Uint8Array(5 + key.length + (set ? 4 + set.value.length : 0));
  const view = new DataView(call.buffer);
  call[0] = set ? OP_CACHE_SET : OP_CACHE_GET;
  view.setUint32(1, key.length, true);
  call.set(key, 5);
  if (set) {
    view.setInt32(5 + key.length, set.ttlSeconds, true);
    call.set(set.value, 9 + key.length);
  }
  return call;
}

/** Whether a host call is a cache call. */
export function isCacheCall(call: Uint8Array): boolean {
  return call[0] === OP_CACHE_GET || call[0] === OP_CACHE_SET;
}

/**
 * Runs a call of {@linkcode encodeCacheCall} against `cache`; never throws or rejects: a
 * backend's error is an error reply.
 *
 * @param cache the pool's cache
 * @param call the call (read before this returns: it may be a view of the channel)
 * @returns the reply, at once if the backend answered synchronously
 */
export function serveCacheCall(
  cache: CacheBackend,
  call: Uint8Array,
): Uint8Array | Promise<Uint8Array> {
  const view = new DataView(call.buffer, call.byteOffset, call.byteLength);
  const keyLength = view.getUint32(1, true);
  const key = decoder.decode(call.subarray(5, 5 + keyLength));
  try {
    if (call[0] === OP_CACHE_SET) {
      const ttl = view.getInt32(5 + keyLength, true);
      // A copy: the backend may keep it, and the call's bytes are reused.
      const stored = cache.set(key, call.slice(9 + keyLength), ttl);
      return stored instanceof Promise
        ? stored.then(() => valueReply(STORED), failed)
        : valueReply(STORED);
    }
    const value = cache.get(key);
    return value instanceof Promise ? value.then(found, failed) : found(value);
  } catch (error) {
    return failed(error);
  }
}

function found(value: Uint8Array | undefined): Uint8Array {
  return value ? valueReply(value) : errorReply("key not found");
}

function failed(error: unknown): Uint8Array {
  return errorReply(messageOf(error));
}
