/**
 * PostgreSQL frontend/backend protocol 3.0 (PostgreSQL docs, "Frontend/Backend Protocol",
 * chapter 55 in v15): the messages this client writes and a strict reader of what the server
 * sends. Every message but the startup family is `type: u8, length: i32 (counting itself),
 * body`; integers are big-endian; strings are NUL-terminated UTF-8 ("cstring").
 *
 * @module
 */

import { decodeUtf8Strict } from "../wire/mod.ts";

/** Protocol version 3.0, as sent in the StartupMessage (§55.7). */
export const PROTOCOL_VERSION = 196608;
/** SSLRequest code (§55.2.10). */
export const SSL_REQUEST_CODE = 80877103;
/** CancelRequest code (§55.2.8). */
export const CANCEL_REQUEST_CODE = 80877102;
/** Size of the type byte plus the length field. */
export const HEADER_LEN = 5;

const encoder = new TextEncoder();

/** Builds one message body from parts; every length is checked to fit an int32. */
class MessageWriter {
  #parts: Uint8Array[] = [];
  #len = 0;

  byte(value: number): this {
    return this.bytes(Uint8Array.of(value));
  }

  int16(value: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setInt16(0, value);
    return this.bytes(b);
  }

  int32(value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, value);
    return this.bytes(b);
  }

  cstring(value: string): this {
    if (value.includes("\0")) {
      throw new TypeError(
        `a protocol string cannot contain a NUL character: ${JSON.stringify(value)}`,
      );
    }
    return this.bytes(encoder.encode(value)).byte(0);
  }

  bytes(value: Uint8Array): this {
    this.#parts.push(value);
    this.#len += value.length;
    return this;
  }

  /** The message: type byte (absent for the startup family), then length, then body. */
  finish(type?: string): Uint8Array {
    const head = type === undefined ? 4 : 5;
    const total = head + this.#len;
    if (total - (head - 4) > 0x7fffffff) throw new RangeError("message too large for the protocol");
    const out = new Uint8Array(total);
    const view = new DataView(out.buffer);
    if (type !== undefined) out[0] = type.charCodeAt(0);
    view.setInt32(head - 4, this.#len + 4);
    let at = head;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** StartupMessage (§55.7): version, then name/value pairs, then a NUL. */
export function startupMessage(params: Readonly<Record<string, string>>): Uint8Array {
  const w = new MessageWriter().int32(PROTOCOL_VERSION);
  for (const [k, v] of Object.entries(params)) w.cstring(k).cstring(v);
  return w.byte(0).finish();
}

/** SSLRequest (§55.2.10). */
export function sslRequest(): Uint8Array {
  return new MessageWriter().int32(SSL_REQUEST_CODE).finish();
}

/** CancelRequest (§55.2.8) for the backend `processId` holding `secretKey`. */
export function cancelRequest(processId: number, secretKey: number): Uint8Array {
  return new MessageWriter().int32(CANCEL_REQUEST_CODE).int32(processId).int32(secretKey)
    .finish();
}

/** PasswordMessage `p` (cleartext or MD5 answer). */
export function passwordMessage(password: string): Uint8Array {
  return new MessageWriter().cstring(password).finish("p");
}

/** SASLInitialResponse `p` (§55.7). */
export function saslInitialResponse(mechanism: string, data: Uint8Array): Uint8Array {
  return new MessageWriter().cstring(mechanism).int32(data.length).bytes(data).finish("p");
}

/** SASLResponse `p`. */
export function saslResponse(data: Uint8Array): Uint8Array {
  return new MessageWriter().bytes(data).finish("p");
}

/** Parse `P`: a statement with every parameter type left for the server to infer. */
export function parseMessage(statement: string, sql: string): Uint8Array {
  return new MessageWriter().cstring(statement).cstring(sql).int16(0).finish("P");
}

/** Describe `D` of a statement (`S`) or portal (`P`). */
export function describeMessage(kind: "S" | "P", name: string): Uint8Array {
  return new MessageWriter().byte(kind.charCodeAt(0)).cstring(name).finish("D");
}

/** Close `C` of a statement (`S`) or portal (`P`). */
export function closeMessage(kind: "S" | "P", name: string): Uint8Array {
  return new MessageWriter().byte(kind.charCodeAt(0)).cstring(name).finish("C");
}

/**
 * Bind `B`: unnamed portal, every parameter in text format (`null` is SQL NULL), every result
 * column in text format.
 */
export function bindMessage(statement: string, values: readonly (string | null)[]): Uint8Array {
  if (values.length > 65535) throw new RangeError(`too many parameters: ${values.length}`);
  const w = new MessageWriter().cstring("").cstring(statement).int16(0).int16(values.length);
  for (const v of values) {
    if (v === null) {
      w.int32(-1);
    } else {
      const b = encoder.encode(v);
      w.int32(b.length).bytes(b);
    }
  }
  return w.int16(0).finish("B");
}

/** Execute `E` of the unnamed portal, all rows. */
export function executeMessage(): Uint8Array {
  return new MessageWriter().cstring("").int32(0).finish("E");
}

/** Sync `S`. */
export function syncMessage(): Uint8Array {
  return new MessageWriter().finish("S");
}

/** Terminate `X`. */
export function terminateMessage(): Uint8Array {
  return new MessageWriter().finish("X");
}

/** One backend message: its type byte as a character and its body. */
export interface BackendMessage {
  readonly type: string;
  readonly body: Uint8Array;
}

/** A malformed message from the server: the connection cannot be trusted any more. */
export class ProtocolViolation extends Error {
  constructor(message: string) {
    super(`PostgreSQL protocol violation: ${message}`);
    this.name = "ProtocolViolation";
  }
}

/** Reads fields of one message body in order, failing on any overrun. */
export class BodyReader {
  readonly #body: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(body: Uint8Array) {
    this.#body = body;
    this.#view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  }

  #need(n: number): void {
    if (this.#at + n > this.#body.length) throw new ProtocolViolation("message body too short");
  }

  get remaining(): number {
    return this.#body.length - this.#at;
  }

  byte(): number {
    this.#need(1);
    return this.#body[this.#at++]!;
  }

  int16(): number {
    this.#need(2);
    const v = this.#view.getInt16(this.#at);
    this.#at += 2;
    return v;
  }

  int32(): number {
    this.#need(4);
    const v = this.#view.getInt32(this.#at);
    this.#at += 4;
    return v;
  }

  uint32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.#need(n);
    const v = this.#body.subarray(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }

  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }

  cstring(): string {
    const end = this.#body.indexOf(0, this.#at);
    if (end < 0) throw new ProtocolViolation("unterminated string");
    const v = utf8(this.#body.subarray(this.#at, end));
    this.#at = end + 1;
    return v;
  }
}

/** Decodes UTF-8 strictly: the session sets client_encoding=UTF8, so anything else is broken. */
export function utf8(bytes: Uint8Array): string {
  try {
    return decodeUtf8Strict(bytes);
  } catch (cause) {
    throw new ProtocolViolation(`invalid UTF-8 from the server (${String(cause)})`);
  }
}

/**
 * Splits complete messages off the front of `buffer[0, end)`. Returns the messages and how many
 * bytes they used; a partial message at the end stays for the next read.
 *
 * @throws {ProtocolViolation} a length below 4 or above `maxMessageBytes`
 */
export function splitMessages(
  buffer: Uint8Array,
  end: number,
  maxMessageBytes: number,
): { messages: BackendMessage[]; used: number } {
  const messages: BackendMessage[] = [];
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let at = 0;
  while (end - at >= HEADER_LEN) {
    const len = view.getInt32(at + 1);
    if (len < 4) throw new ProtocolViolation(`message length ${len} is below 4`);
    if (len > maxMessageBytes) {
      throw new ProtocolViolation(
        `a ${len}-byte message exceeds maxMessageBytes (${maxMessageBytes}); ` +
          "raise the client's maxMessageBytes if such rows are expected",
      );
    }
    if (end - at < len + 1) break;
    messages.push({
      type: String.fromCharCode(buffer[at]!),
      body: buffer.slice(at + HEADER_LEN, at + 1 + len),
    });
    at += 1 + len;
  }
  return { messages, used: at };
}

/** Fields of an ErrorResponse or NoticeResponse (§55.8), by their one-letter codes. */
export function parseFields(body: Uint8Array): Map<string, string> {
  const r = new BodyReader(body);
  const out = new Map<string, string>();
  for (;;) {
    const code = r.byte();
    if (code === 0) return out;
    out.set(String.fromCharCode(code), r.cstring());
  }
}

/** One column of a RowDescription `T`. */
export interface FieldDescription {
  readonly name: string;
  readonly tableOid: number;
  readonly columnIndex: number;
  readonly typeOid: number;
  readonly typeSize: number;
  readonly typeModifier: number;
  readonly format: number;
}

/** RowDescription `T`. */
export function parseRowDescription(body: Uint8Array): FieldDescription[] {
  const r = new BodyReader(body);
  const n = r.int16();
  const out: FieldDescription[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      name: r.cstring(),
      tableOid: r.uint32(),
      columnIndex: r.int16(),
      typeOid: r.uint32(),
      typeSize: r.int16(),
      typeModifier: r.int32(),
      format: r.int16(),
    });
  }
  return out;
}

/** ParameterDescription `t`: the type OID of each parameter. */
export function parseParameterDescription(body: Uint8Array): number[] {
  const r = new BodyReader(body);
  const n = r.int16();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.uint32());
  return out;
}

/** DataRow `D`: each column's raw bytes, `null` for SQL NULL. */
export function parseDataRow(body: Uint8Array): (Uint8Array | null)[] {
  const r = new BodyReader(body);
  const n = r.int16();
  const out: (Uint8Array | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    out.push(len < 0 ? null : r.bytes(len));
  }
  return out;
}

/** The row count at the end of a CommandComplete tag (`INSERT 0 5`, `UPDATE 3`), or 0. */
export function rowCountOf(tag: string): number {
  const m = /^(?:INSERT \d+|UPDATE|DELETE|SELECT|MERGE|MOVE|FETCH|COPY) (\d+)$/.exec(tag);
  return m ? Number(m[1]) : 0;
}
