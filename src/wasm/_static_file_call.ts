/**
 * `env.get_static_file`: the wire form of a job's read of a static file, from its worker to the
 * pool's {@linkcode StaticFiles} on the main thread. The result is the file's bytes; a missing
 * file, or a pool without static files, is an error naming the fix.
 *
 * @module
 */

import { errorReply, messageOf, valueReply } from "./_call_reply.ts";
import type { StaticFiles } from "./host_services.ts";

const OP_STATIC_FILE = 6;
const decoder = new TextDecoder();

/** What a job hears when its pool has no static files. */
export const NO_STATIC_FILES =
  "no static files are configured: start the sat with --static DIR (or give the pool staticFiles)";

/** A read as a worker sends it: u8 OP_STATIC_FILE, then the name's UTF-8. */
export function encodeStaticFileCall(name: Uint8Array): Uint8Array {
  const call = new Uint8Array(1 + name.length);
  call[0] = OP_STATIC_FILE;
  call.set(name, 1);
  return call;
}

/** Whether a host call reads a static file. */
export function isStaticFileCall(call: Uint8Array): boolean {
  return call[0] === OP_STATIC_FILE;
}

/**
 * Runs a call of {@linkcode encodeStaticFileCall} on `files`; never throws or rejects.
 *
 * @param files the pool's static files, if it has them
 * @param call the call (read before this returns)
 * @returns the reply: the file's bytes, or an error message
 */
export function serveStaticFileCall(
  files: StaticFiles | undefined,
  call: Uint8Array,
): Uint8Array | Promise<Uint8Array> {
  if (!files) return errorReply(NO_STATIC_FILES);
  const name = decoder.decode(call.subarray(1));
  const found = (bytes: Uint8Array | undefined) =>
    bytes ? valueReply(bytes) : errorReply(`no static file named ${JSON.stringify(name)}`);
  try {
    const bytes = files.read(name);
    return bytes instanceof Promise
      ? bytes.then(found, (error) => errorReply(messageOf(error)))
      : found(bytes);
  } catch (error) {
    return errorReply(messageOf(error));
  }
}
