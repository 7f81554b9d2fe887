/**
 * RESP2, the Redis serialization protocol (redis.io/docs/reference/protocol-spec): commands
 * go out as an array of bulk strings, replies come back as one of
 *
 * ```
 * +<text>\r\n             simple string
 * -<PREFIX> <text>\r\n    error
 * :<integer>\r\n          integer
 * $<len>\r\n<bytes>\r\n    bulk string ($-1: null)
 * *<count>\r\n<replies>    array (*-1: null)
 * ```
 *
 * The reader is incremental (a partial reply waits for more bytes) and bounded: bulk length,
 * array length, nesting depth and line length all have limits.
 *
 * @module
 */

import { concatBytes } from "../wire/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CR = 13;
const LF = 10;

/** Longest `+`, `-`, `:`, `$` or `*` line accepted (bytes). */
export const MAX_LINE_BYTES = 64 * 1024;
/** Deepest array nesting accepted. */
export const MAX_DEPTH = 16;

/** An error reply (`-ERR ...`), as a value: it may also sit inside an array reply. */
export class RespErrorReply {
  constructor(readonly message: string) {}
}

/** A decoded reply. */
export type RespValue =
  | string
  | number
  | bigint
  | Uint8Array
  | null
  | RespErrorReply
  | readonly RespValue[];

/** A reply the server must never send: the connection is out of step and must end. */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(`Redis protocol violation: ${message}`);
    this.name = "RespProtocolError";
  }
}

/** Limits of {@linkcode readReply}. */
export interface RespLimits {
  /** Largest bulk string, bytes. */
  readonly maxBulkBytes: number;
  /** Most elements in one array. */
  readonly maxArrayLength: number;
}

/** Encodes one command as an array of bulk strings. */
export function encodeCommand(args: readonly (string | Uint8Array)[]): Uint8Array {
  const parts: Uint8Array[] = [encoder.encode(`*${args.length}\r\n`)];
  for (const a of args) {
    const bytes = typeof a === "string" ? encoder.encode(a) : a;
    parts.push(encoder.encode(`$${bytes.length}\r\n`), bytes, encoder.encode("\r\n"));
  }
  return concatBytes(parts);
}

/**
 * Reads one complete reply from `buf[start, end)`.
 *
 * @returns the value and where the next reply starts, or undefined when more bytes are needed
 * @throws {RespProtocolError} malformed input or a limit exceeded
 */
export function readReply(
  buf: Uint8Array,
  start: number,
  end: number,
  limits: RespLimits,
  depth = 0,
): { value: RespValue; next: number } | undefined {
  if (start >= end) return undefined;
  const lineEnd = findCrlf(buf, start + 1, end);
  if (lineEnd < 0) {
    if (end - start > MAX_LINE_BYTES) throw new RespProtocolError("a reply line is too long");
    return undefined;
  }
  const line = decoder.decode(buf.subarray(start + 1, lineEnd));
  const after = lineEnd + 2;
  switch (buf[start]) {
    case 0x2b: // +
      return { value: line, next: after };
    case 0x2d: // -
      return { value: new RespErrorReply(line), next: after };
    case 0x3a: // :
      return { value: integer(line), next: after };
    case 0x24: { // $
      const len = length(line);
      if (len < 0) return { value: null, next: after };
      if (len > limits.maxBulkBytes) {
        throw new RespProtocolError(
          `a ${len}-byte value exceeds the limit of ${limits.maxBulkBytes} bytes`,
        );
      }
      if (end - after < len + 2) return undefined;
      if (buf[after + len] !== CR || buf[after + len + 1] !== LF) {
        throw new RespProtocolError("a bulk string is not followed by CRLF");
      }
      return { value: buf.slice(after, after + len), next: after + len + 2 };
    }
    case 0x2a: { // *
      const count = length(line);
      if (count < 0) return { value: null, next: after };
      if (count > limits.maxArrayLength) {
        throw new RespProtocolError(`an array of ${count} exceeds ${limits.maxArrayLength}`);
      }
      if (depth >= MAX_DEPTH) throw new RespProtocolError("arrays nest too deep");
      const items: RespValue[] = [];
      let at = after;
      for (let i = 0; i < count; i++) {
        const r = readReply(buf, at, end, limits, depth + 1);
        if (!r) return undefined;
        items.push(r.value);
        at = r.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new RespProtocolError(`unknown reply type byte 0x${buf[start]!.toString(16)}`);
  }
}

function findCrlf(buf: Uint8Array, from: number, end: number): number {
  for (let i = buf.indexOf(CR, from); i >= 0 && i + 1 < end; i = buf.indexOf(CR, i + 1)) {
    if (buf[i + 1] === LF) return i;
  }
  return -1;
}

function integer(line: string): number | bigint {
  if (!/^-?\d+$/.test(line)) throw new RespProtocolError(`bad integer "${line.slice(0, 40)}"`);
  const n = Number(line);
  return Number.isSafeInteger(n) ? n : BigInt(line);
}

function length(line: string): number {
  if (line === "-1") return -1;
  if (!/^\d{1,10}$/.test(line)) throw new RespProtocolError(`bad length "${line.slice(0, 40)}"`);
  return Number(line);
}
