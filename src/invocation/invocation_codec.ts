/**
 * Messages of the invocation protocol, the application protocol that proxy and sat speak
 * inside the secure channel. Many invocations share one channel; each message is one channel
 * payload (at most MAX_PAYLOAD_LEN bytes).
 *
 * Layout of every message:
 *
 * ```
 * offset  size  field
 * 0       1     type: 1 HELLO, 2 INVOKE, 3 BODY, 4 RESULT, 5 CANCEL, 6 DEPLOY, 7 BLOB, 8 READY,
 *               9 PING, 10 PONG, 11 WINDOW
 * 1       1     flags: bit 0 END (the last chunk of this invocation's body or result)
 * 2       4     id: invocation id, big-endian u32 (0 for HELLO)
 * 6       rest  type-specific:
 *   HELLO   JSON Hello (functions, digests, cached, delivery, sat → proxy, once, first
 *           requestless)
 *   INVOKE  u16 JSON length, JSON InvokeHeader, body chunk    proxy → sat
 *   BODY    body chunk (continues an INVOKE or a RESULT)       either way
 *   RESULT  u16 JSON length, JSON ResultHeader, output chunk  sat → proxy
 *   CANCEL  empty                                             proxy → sat
 *   BLOB    u16 JSON length, JSON {sha256, size}, content     proxy → sat
 *   DEPLOY  u16 JSON length, JSON {size}, manifest JSON chunk proxy → sat (id: generation)
 *   READY   JSON {functions: {key: sha256}, requestless} or  sat → proxy (id: generation; 0:
 *           {error}                                           unasked, e.g. {} when draining)
 *   PING    empty                                             proxy → sat (id: sequence)
 *   PONG    empty                                             sat → proxy (id: the PING's)
 *   WINDOW  u32 bytes                                         either way: more credit for the
 *                                                             body stream `id` (see _flow.ts)
 * ```
 *
 * BLOB and DEPLOY deliver runnables (see deployment_codec.ts): BLOBs first, each a file
 * content-addressed by SHA-256, then the DEPLOY manifest naming them; the sat answers READY.
 * `requestless` (HELLO, READY) names the functions whose modules never read the request; their
 * INVOKEs carry no request headers or params.
 *
 * An INVOKE, RESULT, BLOB or DEPLOY without END is followed by BODY messages with the same id
 * until one carries END. Decoding is strict: a wrong size, an unknown type or flag, or JSON of
 * the wrong shape throws InvocationProtocolError, and the receiver ends the channel.
 *
 * @module
 */

import { MAX_PAYLOAD_LEN } from "../channel/mod.ts";
import { allocBytes, decodeUtf8Strict } from "../wire/mod.ts";
import {
  type BlobHeader,
  checkBlobHeader,
  checkDeployHeader,
  checkHello,
  checkReadyReport,
  type DeployHeader,
  type ReadyReport,
} from "./deployment_codec.ts";

/** Message types. */
export const HELLO = 1;
/** A new invocation (proxy → sat). */
export const INVOKE = 2;
/** A further chunk of a body or result. */
export const BODY = 3;
/** The start of an invocation's result (sat → proxy). */
export const RESULT = 4;
/** The proxy no longer wants this invocation's result. */
export const CANCEL = 5;

/** A file of a deployment (proxy → sat). */
export const BLOB = 7;
/** A deployment manifest (proxy → sat). */
export const DEPLOY = 6;
/** The sat applied a deployment (sat → proxy). */
export const READY = 8;

/** A health check (proxy → sat); answered at once with PONG. */
export const PING = 9;
/** The answer to a PING, same id. */
export const PONG = 10;

/** Flow-control credit for one body stream (see _flow.ts). */
export const WINDOW = 11;

/** Flag: last chunk. */
export const FLAG_END = 1;
/** Size of the fixed message header. */
export const MESSAGE_HEADER_LEN = 6;
/** Largest body chunk one message carries after its headers. */
export const MAX_CHUNK_LEN: number = MAX_PAYLOAD_LEN - MESSAGE_HEADER_LEN - 2;
/** Largest JSON header of an INVOKE or RESULT. */
export const MAX_JSON_HEADER_LEN = 16 * 1024;

/** What the proxy asks a sat to run. */
export interface InvokeHeader {
  /** The runnable's name. */
  readonly fn: string;
  /** The HTTP method of the request. */
  readonly method: string;
  /** Path and query of the request. */
  readonly url: string;
  /** The request id that follows the request through proxy and sat. */
  readonly requestId: string;
  /** Request headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /** URL parameters from the route. */
  readonly params: Readonly<Record<string, string>>;
  /** The request state the function sees (Atmo), each value base64-encoded bytes. */
  readonly state?: Readonly<Record<string, string>>;
  /** The body's length when it is streamed (INVOKE without END) and known in advance. */
  readonly size?: number;
}

/** What a sat tells the proxy first. */
export interface Hello {
  /** Keys of the functions it runs now. */
  readonly functions: readonly string[];
  /** SHA-256 (hex) of each function's module, by key. */
  readonly digests?: Readonly<Record<string, string>>;
  /** SHA-256 of the files it holds in its cache (the proxy need not send those). */
  readonly cached?: readonly string[];
  /** True when it takes runnables from the proxy (it was given no --runnables). */
  readonly delivery?: boolean;
  /**
   * Keys of the functions whose modules never read the request (no `request_get_field`): the
   * proxy sends their invocations without the request's headers and params.
   */
  readonly requestless?: readonly string[];
}

/** How an invocation ended. */
export type ResultHeader =
  | {
    readonly ok: true;
    /** Response headers the function set (resp_set_header), lower-case names. */
    readonly headers?: Readonly<Record<string, string>>;
  }
  | FailedInvocation;

/** How an invocation failed: what a RESULT carries, and what the proxy's caller gets. */
export interface FailedInvocation {
  readonly ok: false;
  readonly code: number;
  readonly message: string;
  /** The sat did not run the invocation (it was at its limit): another sat may. */
  readonly notRun?: true;
}

/**
 * How an invocation ended: what a RESULT and the output after it carry, the sat's runner gives
 * and the proxy's caller gets.
 */
export type InvocationOutcome =
  | {
    readonly ok: true;
    readonly output: Uint8Array;
    /** Response headers the function set. */
    readonly headers?: Readonly<Record<string, string>>;
  }
  | FailedInvocation;

/** A decoded message. */
export type InvocationMessage =
  | ({ readonly type: typeof HELLO } & Hello)
  | {
    readonly type: typeof INVOKE;
    readonly id: number;
    readonly end: boolean;
    readonly header: InvokeHeader;
    readonly chunk: Uint8Array;
  }
  | {
    readonly type: typeof BODY;
    readonly id: number;
    readonly end: boolean;
    readonly chunk: Uint8Array;
  }
  | {
    readonly type: typeof RESULT;
    readonly id: number;
    readonly end: boolean;
    readonly header: ResultHeader;
    readonly chunk: Uint8Array;
  }
  | { readonly type: typeof CANCEL; readonly id: number }
  | { readonly type: typeof PING | typeof PONG; readonly id: number }
  | { readonly type: typeof WINDOW; readonly id: number; readonly credit: number }
  | {
    readonly type: typeof BLOB;
    readonly id: number;
    readonly end: boolean;
    readonly header: BlobHeader;
    readonly chunk: Uint8Array;
  }
  | {
    readonly type: typeof DEPLOY;
    readonly id: number;
    readonly end: boolean;
    readonly header: DeployHeader;
    readonly chunk: Uint8Array;
  }
  | { readonly type: typeof READY; readonly id: number; readonly ready: ReadyReport };

/** A peer sent a message that breaks the protocol. */
export class InvocationProtocolError extends Error {
  override readonly name = "InvocationProtocolError";
}

const encoder = new TextEncoder();

function frame(type: number, end: boolean, id: number, size: number): [Uint8Array, number] {
  const out = allocBytes(MESSAGE_HEADER_LEN + size);
  writeHeader(out, type, end, id);
  return [out, MESSAGE_HEADER_LEN];
}

function writeHeader(out: Uint8Array, type: number, end: boolean, id: number): void {
  out[0] = type;
  out[1] = end ? FLAG_END : 0;
  out[2] = id >>> 24;
  out[3] = id >>> 16;
  out[4] = id >>> 8;
  out[5] = id;
}

/** HELLO: the functions this sat can run (and, optionally, what it holds and takes). */
export function encodeHello(
  functions: readonly string[],
  more: Omit<Hello, "functions"> = {},
): Uint8Array {
  const text = encoder.encode(JSON.stringify({ ...more, functions }));
  const [out, offset] = frame(HELLO, true, 0, text.length);
  out.set(text, offset);
  return out;
}

/** READY: the sat's answer to DEPLOY `generation`. */
export function encodeReady(generation: number, report: Record<string, unknown>): Uint8Array {
  const text = encoder.encode(JSON.stringify(report));
  const [out, offset] = frame(READY, true, generation, text.length);
  out.set(text, offset);
  return out;
}

/**
 * Makes `message` a BODY message: writes the header into its first
 * {@linkcode MESSAGE_HEADER_LEN} bytes, before a chunk already in place after them.
 */
export function writeBodyHeader(message: Uint8Array, id: number, end: boolean): void {
  writeHeader(message, BODY, end, id);
}

/** BODY: a further chunk. */
export function encodeBody(id: number, chunk: Uint8Array, end: boolean): Uint8Array {
  const [out, offset] = frame(BODY, end, id, chunk.length);
  out.set(chunk, offset);
  return out;
}

/** CANCEL. */
export function encodeCancel(id: number): Uint8Array {
  return frame(CANCEL, true, id, 0)[0];
}

/** WINDOW: `credit` more bytes may be sent on stream `id`. */
export function encodeWindow(id: number, credit: number): Uint8Array {
  const [out, offset] = frame(WINDOW, true, id, 4);
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(offset, credit);
  return out;
}

/** PING or PONG. */
export function encodePing(type: typeof PING | typeof PONG, id: number): Uint8Array {
  return frame(type, true, id, 0)[0];
}

/**
 * An INVOKE (or RESULT) and the BODY messages that carry the rest of `body`, encoding the JSON
 * header once.
 *
 * @throws RangeError when the JSON header exceeds MAX_JSON_HEADER_LEN
 */
export function encodeWithBody(
  type: typeof INVOKE | typeof RESULT | typeof BLOB | typeof DEPLOY,
  id: number,
  header: InvokeHeader | ResultHeader | BlobHeader | DeployHeader,
  body: Uint8Array,
): Uint8Array[] {
  if (type === RESULT && isOkHeader(header)) return encodeOk(id, body);
  // Encode the JSON straight into the message, then trim. ASCII JSON (the usual header) takes
  // as many bytes as characters: that size is tried first; other text takes up to 3 bytes per
  // UTF-16 unit.
  const json = JSON.stringify(header);
  const jsonAt = MESSAGE_HEADER_LEN + 2;
  const firstBody = Math.min(body.length, MAX_CHUNK_LEN);
  let scratch = allocBytes(jsonAt + json.length + firstBody);
  let { read, written } = encoder.encodeInto(json, scratch.subarray(jsonAt, jsonAt + json.length));
  if (read < json.length && json.length <= MAX_JSON_HEADER_LEN) {
    const room = Math.min(json.length * 3, MAX_JSON_HEADER_LEN + 3);
    scratch = allocBytes(jsonAt + room + firstBody);
    ({ read, written } = encoder.encodeInto(json, scratch.subarray(jsonAt, jsonAt + room)));
  }
  if (read < json.length || written > MAX_JSON_HEADER_LEN) {
    throw new RangeError(`invocation header exceeds ${MAX_JSON_HEADER_LEN} bytes`);
  }
  return withBody(scratch, type, id, written, body);
}

/** The header of a plain successful RESULT, and its JSON. */
const OK_HEADER: ResultHeader = Object.freeze({ ok: true });
const OK_JSON = encoder.encode(JSON.stringify(OK_HEADER));

/** Whether `rest` (a RESULT after its fixed header) starts with the length and JSON of OK. */
function isOkJson(rest: Uint8Array): boolean {
  for (let i = 0; i < OK_JSON.length; i++) if (rest[2 + i] !== OK_JSON[i]) return false;
  return true;
}

function isOkHeader(header: object): boolean {
  const h = header as Record<string, unknown>;
  if (h.ok !== true) return false;
  for (const key in h) if (key !== "ok" && h[key] !== undefined) return false;
  return true;
}

/** A plain successful RESULT and the BODY messages after it: the JSON written as bytes. */
function encodeOk(id: number, body: Uint8Array): Uint8Array[] {
  const scratch = allocBytes(
    MESSAGE_HEADER_LEN + 2 + OK_JSON.length + Math.min(body.length, MAX_CHUNK_LEN),
  );
  scratch.set(OK_JSON, MESSAGE_HEADER_LEN + 2);
  return withBody(scratch, RESULT, id, OK_JSON.length, body);
}

/**
 * The first message, in `scratch` (its JSON header of `jsonLength` bytes already in place after
 * the fixed header and the length, room for a first chunk behind it), then BODY messages with
 * the rest of `body`.
 */
function withBody(
  scratch: Uint8Array,
  type: number,
  id: number,
  jsonLength: number,
  body: Uint8Array,
): Uint8Array[] {
  const jsonAt = MESSAGE_HEADER_LEN + 2;
  const firstLength = Math.min(body.length, MAX_CHUNK_LEN - jsonLength);
  const first = scratch.subarray(0, jsonAt + jsonLength + firstLength);
  writeHeader(first, type, firstLength === body.length, id);
  first[MESSAGE_HEADER_LEN] = jsonLength >>> 8;
  first[MESSAGE_HEADER_LEN + 1] = jsonLength;
  first.set(body.subarray(0, firstLength), jsonAt + jsonLength);
  const messages: Uint8Array[] = [first];
  for (let at = firstLength; at < body.length; at += MAX_CHUNK_LEN) {
    const chunk = body.subarray(at, at + MAX_CHUNK_LEN);
    messages.push(encodeBody(id, chunk, at + chunk.length === body.length));
  }
  return messages;
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(decodeUtf8Strict(bytes));
  } catch (cause) {
    throw new InvocationProtocolError("a message carries invalid JSON", { cause });
  }
}

function isStringRecord(value: unknown): value is Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  // for-in, not Object.values(...).every: no array and no closure per call, 8 times faster on a
  // request's headers (JSON.parse makes own properties only; an inherited one would be refused).
  for (const key in value) {
    if (typeof (value as Record<string, unknown>)[key] !== "string") return false;
  }
  return true;
}

function checkInvokeHeader(value: unknown): InvokeHeader {
  const v = value as Record<string, unknown>;
  if (
    typeof v !== "object" || v === null || typeof v.fn !== "string" ||
    typeof v.method !== "string" || typeof v.url !== "string" ||
    typeof v.requestId !== "string" || !isStringRecord(v.headers) || !isStringRecord(v.params) ||
    (v.state !== undefined && !isStringRecord(v.state)) ||
    (v.size !== undefined && (!Number.isSafeInteger(v.size) || (v.size as number) < 0))
  ) {
    throw new InvocationProtocolError("INVOKE header has the wrong shape");
  }
  return v as unknown as InvokeHeader;
}

function checkResultHeader(value: unknown): ResultHeader {
  const v = value as Record<string, unknown>;
  if (typeof v === "object" && v !== null && v.ok === true) {
    if (v.headers === undefined) return { ok: true };
    if (!isStringRecord(v.headers)) {
      throw new InvocationProtocolError("RESULT headers have the wrong shape");
    }
    return { ok: true, headers: v.headers };
  }
  if (
    typeof v === "object" && v !== null && v.ok === false && Number.isInteger(v.code) &&
    typeof v.message === "string"
  ) {
    if (v.notRun !== undefined && v.notRun !== true) {
      throw new InvocationProtocolError("RESULT header has the wrong shape");
    }
    return v.notRun
      ? { ok: false, code: v.code as number, message: v.message, notRun: true }
      : { ok: false, code: v.code as number, message: v.message };
  }
  throw new InvocationProtocolError("RESULT header has the wrong shape");
}

/**
 * Decodes one message.
 *
 * @throws InvocationProtocolError on anything malformed
 */
export function decodeInvocationMessage(bytes: Uint8Array): InvocationMessage {
  if (bytes.length < MESSAGE_HEADER_LEN) {
    throw new InvocationProtocolError(`message of ${bytes.length} bytes is truncated`);
  }
  const type = bytes[0]!;
  const flags = bytes[1]!;
  if (flags & ~FLAG_END) throw new InvocationProtocolError(`unknown flags ${flags}`);
  const end = flags === FLAG_END;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const id = view.getUint32(2);
  const rest = bytes.subarray(MESSAGE_HEADER_LEN);
  const withHeader = (): [unknown, Uint8Array] => {
    if (rest.length < 2) throw new InvocationProtocolError("message is truncated");
    const length = view.getUint16(MESSAGE_HEADER_LEN);
    if (length > MAX_JSON_HEADER_LEN || 2 + length > rest.length) {
      throw new InvocationProtocolError("message header length is out of range");
    }
    return [parseJson(rest.subarray(2, 2 + length)), rest.subarray(2 + length)];
  };
  switch (type) {
    case HELLO: {
      if (id !== 0 || !end) throw new InvocationProtocolError("HELLO has the wrong shape");
      return { type, ...checkHello(parseJson(rest)) };
    }
    case BLOB: {
      const [json, chunk] = withHeader();
      return { type, id, end, header: checkBlobHeader(json), chunk };
    }
    case DEPLOY: {
      const [json, chunk] = withHeader();
      return { type, id, end, header: checkDeployHeader(json), chunk };
    }
    case READY:
      if (!end) throw new InvocationProtocolError("READY has the wrong shape");
      return { type, id, ready: checkReadyReport(parseJson(rest)) };
    case INVOKE: {
      const [json, chunk] = withHeader();
      return { type, id, end, header: checkInvokeHeader(json), chunk };
    }
    case RESULT: {
      // Most results are a plain success: its header is recognised by its bytes, unparsed.
      const length = rest.length >= 2 ? view.getUint16(MESSAGE_HEADER_LEN) : -1;
      if (length === OK_JSON.length && rest.length >= 2 + length && isOkJson(rest)) {
        return { type, id, end, header: OK_HEADER, chunk: rest.subarray(2 + length) };
      }
      const [json, chunk] = withHeader();
      return { type, id, end, header: checkResultHeader(json), chunk };
    }
    case BODY:
      return { type, id, end, chunk: rest };
    case WINDOW:
      if (rest.length !== 4 || !end) {
        throw new InvocationProtocolError("WINDOW has the wrong shape");
      }
      return { type, id, credit: view.getUint32(MESSAGE_HEADER_LEN) };
    case CANCEL:
    case PING:
    case PONG:
      if (rest.length !== 0 || !end) {
        throw new InvocationProtocolError(`message type ${type} has the wrong shape`);
      }
      return { type, id };
    default:
      throw new InvocationProtocolError(`unknown message type ${type}`);
  }
}
