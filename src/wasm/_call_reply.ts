/**
 * The reply to a host call (_job_channel.ts), the same for every call: u8 status (VALUE or
 * ERROR), then the value or the UTF-8 error message (the rest).
 *
 * @module
 */

const REPLY_VALUE = 0;
const REPLY_ERROR = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The head of a reply carrying a value: the value's bytes follow. */
export const VALUE_HEAD: Uint8Array = new Uint8Array([REPLY_VALUE]);

/** A value or the error message the module receives. */
export type CallOutcome = { value: Uint8Array } | { error: string };

/** A reply carrying `value`. */
export function valueReply(value: Uint8Array): Uint8Array {
  const reply = new Uint8Array(1 + value.length);
  reply[0] = REPLY_VALUE;
  reply.set(value, 1);
  return reply;
}

/** A reply carrying an error message. */
export function errorReply(message: string): Uint8Array {
  const bytes = encoder.encode(message);
  const reply = new Uint8Array(1 + bytes.length);
  reply[0] = REPLY_ERROR;
  reply.set(bytes, 1);
  return reply;
}

/** The value or error message of a reply. */
export function decodeReply(reply: Uint8Array): CallOutcome {
  if (reply[0] === REPLY_VALUE) return { value: reply.slice(1) };
  return { error: decoder.decode(reply.subarray(1)) };
}

/** The error message of a reply, or undefined if it carries a value (read in place). */
export function replyError(reply: Uint8Array): string | undefined {
  return reply[0] === REPLY_VALUE ? undefined : decoder.decode(reply.subarray(1));
}

/** The message of an error a host service threw. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
