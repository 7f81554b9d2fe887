/**
 * The relay protocol: what a node (proxy or sat) and the relay say to each other over one TCP
 * connection. Many links share that connection; the relay moves each link's DATA between the
 * two ends without reading it (it is already Noise ciphertext).
 *
 * ## Framing
 *
 * Every message is the body of one length-prefixed frame (length_prefixed.ts: a 4-byte
 * big-endian length, then the body). A body is at most {@link MAX_RELAY_MESSAGE_LEN} bytes.
 * All integers are big-endian. An address is `u8 length` + that many ASCII bytes, and the
 * bytes spell a forwarding address (`FWD_` + 16 lower-case hex digits, 20 bytes); only
 * REGISTER may carry the empty address (length 0: "give me a new one"). A reason is `u16
 * length` + that many UTF-8 bytes, at most {@link MAX_REASON_LEN}.
 *
 * ```
 * type  name         direction        layout after the type byte
 * 0x01  CHALLENGE    relay → node     challenge[32]           (the relay's first message)
 * 0x02  REGISTER     node → relay     publicKey[32] | address (empty or FWD_…) | signature[64]
 * 0x03  REGISTERED   relay → node     address
 * 0x04  REFUSED      relay → node     reason
 * 0x05  OPEN         node → relay     linkId u32 (top bit 0) | address
 * 0x06  INCOMING     relay → node     linkId u32 (top bit 1)
 * 0x07  OPENED       relay → node     linkId u32 (top bit 0)
 * 0x08  OPEN_FAILED  relay → node     linkId u32 (top bit 0) | reason
 * 0x09  DATA         both             linkId u32 | payload (the rest of the frame)
 * 0x0a  CREDIT       both             linkId u32 | bytes u32 (at least 1)
 * 0x0b  CLOSE        both             linkId u32
 * 0x0c  PING         both             (nothing)
 * 0x0d  PONG         both             (nothing)
 * ```
 *
 * A decoder refuses anything else: an unknown type, a short body, trailing bytes, a field
 * out of range (see {@link decodeRelayMessage}). A peer that sends such a frame is broken or
 * hostile: the receiver closes that connection.
 *
 * ## Registration
 *
 * The relay sends CHALLENGE (32 bytes from a CSPRNG) as soon as a connection is accepted. To
 * listen, the node sends REGISTER with its Ed25519 identity key and a signature over
 * {@link registrationMessage}: `"stratos relay register v1" || challenge || address`, so a
 * signature is good for one connection and one requested address only. The relay answers
 * REGISTERED with the address granted (the requested one, or a new random one) or REFUSED. A
 * connection listens on at most one address. An address belongs to the identity that
 * registered it first; the same identity may reclaim it later from a new connection, which
 * then takes over from the old one: the relay tells the old connection with an unsolicited
 * REFUSED, after which it gets no more INCOMING.
 *
 * ## Links
 *
 * Each connection has its own link id space, split in two so that ids never collide: a node
 * picks ids with the top bit clear for the links it OPENs, the relay picks ids with the top
 * bit set for the INCOMING links it announces. The relay answers OPEN with OPENED or
 * OPEN_FAILED carrying the opener's id; on success it has already sent INCOMING to the
 * listener. DATA, CREDIT and CLOSE name the link by the id of the connection they travel on;
 * the relay translates ids between the two ends. CLOSE from either end ends the link at both;
 * a connection that drops closes all its links. Messages for an id that is not open (a link
 * that has just been closed) are ignored, so ids should not be reused soon.
 *
 * ## Flow control
 *
 * Credit-based, per link and direction, end to end. A sender may have at most as many DATA
 * payload bytes in flight as its receiver granted: each direction starts with
 * {@link INITIAL_LINK_CREDIT}, and CREDIT(n) grants n more; the receiver grants credit back
 * as its application consumes data. The relay keeps the same account and forwards CREDIT;
 * DATA beyond the credit, or CREDIT that would let more than the relay's link window be in
 * flight, is a protocol violation that closes the sender's connection. So a slow reader
 * stalls only its own links and never grows the relay's memory beyond one window per link.
 *
 * ## Heartbeats
 *
 * Either side may send PING at any time; the other answers PONG. A connection on which
 * nothing has arrived for the idle timeout is considered dead and closed.
 *
 * @module
 */

import { FrameError, LENGTH_PREFIX_LEN } from "./length_prefixed.ts";

/** Message type codes (the first byte of every relay message). */
export const RelayMessageType = Object.freeze(
  {
    CHALLENGE: 0x01,
    REGISTER: 0x02,
    REGISTERED: 0x03,
    REFUSED: 0x04,
    OPEN: 0x05,
    INCOMING: 0x06,
    OPENED: 0x07,
    OPEN_FAILED: 0x08,
    DATA: 0x09,
    CREDIT: 0x0a,
    CLOSE: 0x0b,
    PING: 0x0c,
    PONG: 0x0d,
  } as const,
);

/** Largest relay message body (the frame's length field); bigger frames close the connection. */
export const MAX_RELAY_MESSAGE_LEN = 256 * 1024;
/** Size of the challenge the relay sends on connect. */
export const RELAY_CHALLENGE_LEN = 32;
/** Size of an Ed25519 public key in REGISTER. */
export const RELAY_PUBLIC_KEY_LEN = 32;
/** Size of an Ed25519 signature in REGISTER. */
export const RELAY_SIGNATURE_LEN = 64;
/** Largest reason text, in UTF-8 bytes. */
export const MAX_REASON_LEN = 1024;
/** Bytes before the payload in a DATA message: type + link id. */
export const DATA_HEADER_LEN = 5;
/** Largest message one link carries (one DATA payload). */
export const MAX_LINK_MESSAGE_LEN: number = MAX_RELAY_MESSAGE_LEN - DATA_HEADER_LEN;
/**
 * Credit each direction of a new link starts with, without any CREDIT message. It exceeds
 * {@link MAX_LINK_MESSAGE_LEN}, so the largest message always fits a fresh window.
 */
export const INITIAL_LINK_CREDIT = 256 * 1024;
/**
 * Default link window: the most DATA bytes in flight per link and direction. 8 MiB: a link
 * carries a whole secure channel (every invocation between a proxy and a sat), and credit comes
 * back only after a round trip through the relay and the receiver's event loop, some ms even on
 * loopback when a busy 2-core machine has any process on the path off the CPU (over a WAN, a
 * window per round trip bounds a stream: 8 MiB at 100 ms is 80 MB/s). Measured with a 100 MiB
 * upload (interleaved runs of 6 with the invocation window raised alike): 4 MiB was 7-12% faster
 * than 1 MiB; 8 MiB was faster than 4 MiB in 8 of 11 runs, by about 10%, and used less CPU.
 */
export const DEFAULT_LINK_WINDOW = 8 * 1024 * 1024;
/** Largest link window a relay or client may be configured with. */
export const MAX_LINK_WINDOW = 64 * 1024 * 1024;
/** Top bit of a link id: set on ids the relay picks (INCOMING), clear on ids a node picks. */
export const RELAY_LINK_ID_FLAG = 0x8000_0000;
/** Largest link id. */
export const MAX_LINK_ID = 0xffff_ffff;
/** Domain separation string at the start of every signed registration. */
export const REGISTER_DOMAIN = "stratos relay register v1";
/** First characters of every forwarding address. */
export const FORWARDING_ADDRESS_PREFIX = "FWD_";
/** Length of a forwarding address: the prefix and 16 hex digits. */
export const FORWARDING_ADDRESS_LEN = 20;

// The same pattern as the link layer's FORWARDING_ADDRESS_PATTERN (wire sits below link).
const ADDRESS_PATTERN = /^FWD_[0-9a-f]{16}$/;

const REGISTER_DOMAIN_BYTES = new TextEncoder().encode(REGISTER_DOMAIN);
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/** One relay protocol message, decoded. Byte fields may be views into the decoded input. */
export type RelayMessage =
  | { readonly type: "challenge"; readonly challenge: Uint8Array }
  | {
    readonly type: "register";
    readonly publicKey: Uint8Array;
    /** The requested address, or "" for a new one. */
    readonly address: string;
    readonly signature: Uint8Array;
  }
  | { readonly type: "registered"; readonly address: string }
  | { readonly type: "refused"; readonly reason: string }
  | { readonly type: "open"; readonly linkId: number; readonly address: string }
  | { readonly type: "incoming"; readonly linkId: number }
  | { readonly type: "opened"; readonly linkId: number }
  | { readonly type: "open-failed"; readonly linkId: number; readonly reason: string }
  | { readonly type: "data"; readonly linkId: number; readonly data: Uint8Array }
  | { readonly type: "credit"; readonly linkId: number; readonly bytes: number }
  | { readonly type: "close"; readonly linkId: number }
  | { readonly type: "ping" }
  | { readonly type: "pong" };

/** Log levels of {@link RelayLog}, most severe first. */
export type RelayLogLevel = "error" | "warn" | "info" | "debug";

/**
 * Where the relay and its client report events. Never given keys or link payloads.
 *
 * @example
 * ```ts
 * const log: RelayLog = (level, message, fields) => logger[level](message, fields);
 * ```
 */
export type RelayLog = (
  level: RelayLogLevel,
  message: string,
  fields?: Readonly<Record<string, unknown>>,
) => void;

/**
 * The bytes a node signs to register: `"stratos relay register v1" || challenge || address`
 * (the address as ASCII, empty when asking for a new one).
 *
 * @param challenge The 32 bytes of the connection's CHALLENGE.
 * @param address The requested forwarding address, or "".
 * @returns A new Uint8Array.
 * @throws {RangeError} when the challenge is not 32 bytes.
 * @throws {TypeError} when the address is neither "" nor a forwarding address.
 * @example
 * ```ts
 * const signature = identity.sign(registrationMessage(challenge, ""));
 * ```
 */
export function registrationMessage(challenge: Uint8Array, address: string): Uint8Array {
  checkLength("challenge", challenge, RELAY_CHALLENGE_LEN);
  if (address !== "") checkAddress(address);
  const out = new Uint8Array(REGISTER_DOMAIN_BYTES.length + RELAY_CHALLENGE_LEN + address.length);
  out.set(REGISTER_DOMAIN_BYTES, 0);
  out.set(challenge, REGISTER_DOMAIN_BYTES.length);
  writeAscii(out, REGISTER_DOMAIN_BYTES.length + RELAY_CHALLENGE_LEN, address);
  return out;
}

/**
 * Encodes a message body (without the frame's length prefix).
 *
 * @param message The message.
 * @returns A new Uint8Array.
 * @throws {TypeError} when a field has the wrong type or an address is malformed.
 * @throws {RangeError} when a field has the wrong size or is out of range.
 * @example
 * ```ts
 * conn.write(encodeFrame(encodeRelayMessage({ type: "close", linkId: 7 })));
 * ```
 */
export function encodeRelayMessage(message: RelayMessage): Uint8Array {
  const out = new Uint8Array(encodedLength(message));
  encodeInto(message, out, 0);
  return out;
}

/**
 * Encodes a message as a whole frame: the 4-byte length prefix, then the body. One allocation,
 * so it is cheaper than `encodeFrame(encodeRelayMessage(message))`.
 *
 * @param message The message.
 * @returns A new Uint8Array.
 * @throws as {@link encodeRelayMessage}.
 * @example
 * ```ts
 * await conn.write(encodeRelayFrame({ type: "ping" }));
 * ```
 */
export function encodeRelayFrame(message: RelayMessage): Uint8Array {
  const length = encodedLength(message);
  const out = new Uint8Array(LENGTH_PREFIX_LEN + length);
  writeU32(out, 0, length);
  encodeInto(message, out, LENGTH_PREFIX_LEN);
  return out;
}

/**
 * A whole DATA frame (length prefix, type, link id, payload), with one allocation and one
 * copy of the payload: the hot path of every link.
 *
 * @param linkId The link id on the connection the frame travels on.
 * @param payload At most {@link MAX_LINK_MESSAGE_LEN} bytes.
 * @returns A new Uint8Array; the payload may be reused right away.
 * @throws {RangeError} when the payload is too long or the id out of range.
 * @example
 * ```ts
 * writer.writeFrame(encodeDataFrame(linkId, ciphertext));
 * ```
 */
export function encodeDataFrame(linkId: number, payload: Uint8Array): Uint8Array {
  checkLinkId(linkId);
  if (payload.length > MAX_LINK_MESSAGE_LEN) {
    throw new RangeError(
      `a link message of ${payload.length} bytes exceeds the maximum of ${MAX_LINK_MESSAGE_LEN}`,
    );
  }
  const length = DATA_HEADER_LEN + payload.length;
  const out = new Uint8Array(LENGTH_PREFIX_LEN + length);
  writeU32(out, 0, length);
  out[LENGTH_PREFIX_LEN] = RelayMessageType.DATA;
  writeU32(out, LENGTH_PREFIX_LEN + 1, linkId);
  out.set(payload, LENGTH_PREFIX_LEN + DATA_HEADER_LEN);
  return out;
}

/**
 * Decodes one message body, strictly.
 *
 * @param bytes A frame body. DATA's `data` and other byte fields are views into it (no copy).
 * @returns The message.
 * @throws {FrameError} on an empty body, an unknown type, a body shorter or longer than its
 *   type allows, a malformed address or reason, a link id with the wrong top bit for its type,
 *   a zero CREDIT, or a body longer than {@link MAX_RELAY_MESSAGE_LEN}.
 * @example
 * ```ts
 * const message = decodeRelayMessage(frameDecoder.next()!);
 * if (message.type === "ping") writer.writeFrame(encodeRelayFrame({ type: "pong" }));
 * ```
 */
export function decodeRelayMessage(bytes: Uint8Array): RelayMessage {
  if (bytes.length === 0) throw new FrameError("empty relay message");
  if (bytes.length > MAX_RELAY_MESSAGE_LEN) {
    throw new FrameError(
      `relay message of ${bytes.length} bytes exceeds the maximum of ${MAX_RELAY_MESSAGE_LEN}`,
    );
  }
  const reader = new Reader(bytes);
  const type = reader.u8();
  let message: RelayMessage;
  switch (type) {
    case RelayMessageType.CHALLENGE:
      message = { type: "challenge", challenge: reader.bytes(RELAY_CHALLENGE_LEN, "challenge") };
      break;
    case RelayMessageType.REGISTER: {
      const publicKey = reader.bytes(RELAY_PUBLIC_KEY_LEN, "public key");
      const address = reader.address(true);
      const signature = reader.bytes(RELAY_SIGNATURE_LEN, "signature");
      message = { type: "register", publicKey, address, signature };
      break;
    }
    case RelayMessageType.REGISTERED:
      message = { type: "registered", address: reader.address(false) };
      break;
    case RelayMessageType.REFUSED:
      message = { type: "refused", reason: reader.reason() };
      break;
    case RelayMessageType.OPEN: {
      const linkId = reader.linkId(false);
      message = { type: "open", linkId, address: reader.address(false) };
      break;
    }
    case RelayMessageType.INCOMING:
      message = { type: "incoming", linkId: reader.linkId(true) };
      break;
    case RelayMessageType.OPENED:
      message = { type: "opened", linkId: reader.linkId(false) };
      break;
    case RelayMessageType.OPEN_FAILED: {
      const linkId = reader.linkId(false);
      message = { type: "open-failed", linkId, reason: reader.reason() };
      break;
    }
    case RelayMessageType.DATA: {
      const linkId = reader.linkId(undefined);
      message = { type: "data", linkId, data: reader.rest() };
      break;
    }
    case RelayMessageType.CREDIT: {
      const linkId = reader.linkId(undefined);
      const credit = reader.u32("credit");
      if (credit === 0) throw new FrameError("CREDIT of 0 bytes");
      message = { type: "credit", linkId, bytes: credit };
      break;
    }
    case RelayMessageType.CLOSE:
      message = { type: "close", linkId: reader.linkId(undefined) };
      break;
    case RelayMessageType.PING:
      message = { type: "ping" };
      break;
    case RelayMessageType.PONG:
      message = { type: "pong" };
      break;
    default:
      throw new FrameError(`unknown relay message type 0x${type.toString(16).padStart(2, "0")}`);
  }
  reader.end(message.type);
  return message;
}

/** Reads fields in order and fails with a FrameError naming what was short or malformed. */
class Reader {
  readonly #bytes: Uint8Array;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  #need(n: number, what: string): void {
    if (this.#offset + n > this.#bytes.length) {
      throw new FrameError(`relay message truncated: ${what} needs ${n} more bytes`);
    }
  }

  u8(): number {
    this.#need(1, "type");
    return this.#bytes[this.#offset++]!;
  }

  u16(what: string): number {
    this.#need(2, what);
    const b = this.#bytes;
    const value = (b[this.#offset]! << 8) | b[this.#offset + 1]!;
    this.#offset += 2;
    return value;
  }

  u32(what: string): number {
    this.#need(4, what);
    const value = readU32(this.#bytes, this.#offset);
    this.#offset += 4;
    return value;
  }

  bytes(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const view = this.#bytes.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return view;
  }

  rest(): Uint8Array {
    const view = this.#bytes.subarray(this.#offset);
    this.#offset = this.#bytes.length;
    return view;
  }

  /** `relayChosen`: true = top bit must be set, false = clear, undefined = either. */
  linkId(relayChosen: boolean | undefined): number {
    const id = this.u32("link id");
    if (relayChosen !== undefined && ((id & RELAY_LINK_ID_FLAG) !== 0) !== relayChosen) {
      throw new FrameError(
        `link id 0x${id.toString(16)} has the top bit ${relayChosen ? "clear" : "set"}, ` +
          `but this message type carries ids the ${relayChosen ? "relay" : "node"} picks`,
      );
    }
    return id;
  }

  address(emptyAllowed: boolean): string {
    this.#need(1, "address length");
    const length = this.#bytes[this.#offset++]!;
    if (length === 0 && emptyAllowed) return "";
    if (length !== FORWARDING_ADDRESS_LEN) {
      throw new FrameError(
        `address of ${length} bytes: a forwarding address has ${FORWARDING_ADDRESS_LEN}`,
      );
    }
    const raw = this.bytes(length, "address");
    const address = String.fromCharCode(...raw);
    if (!ADDRESS_PATTERN.test(address)) {
      throw new FrameError(
        `malformed forwarding address ${JSON.stringify(address)} ` +
          `(expected ${FORWARDING_ADDRESS_PREFIX} and 16 lower-case hex digits)`,
      );
    }
    return address;
  }

  reason(): string {
    const length = this.u16("reason length");
    if (length > MAX_REASON_LEN) {
      throw new FrameError(`reason of ${length} bytes exceeds the maximum of ${MAX_REASON_LEN}`);
    }
    const raw = this.bytes(length, "reason");
    try {
      return utf8Decoder.decode(raw);
    } catch (cause) {
      throw new FrameError("reason is not valid UTF-8", { cause });
    }
  }

  end(type: string): void {
    const extra = this.#bytes.length - this.#offset;
    if (extra !== 0) {
      throw new FrameError(`${extra} trailing bytes after a ${type.toUpperCase()} message`);
    }
  }
}

function encodedLength(message: RelayMessage): number {
  switch (message.type) {
    case "challenge":
      return 1 + RELAY_CHALLENGE_LEN;
    case "register":
      return 1 + RELAY_PUBLIC_KEY_LEN + 1 + message.address.length + RELAY_SIGNATURE_LEN;
    case "registered":
      return 1 + 1 + message.address.length;
    case "refused":
      return 1 + 2 + reasonBytes(message.reason).length;
    case "open":
      return 1 + 4 + 1 + message.address.length;
    case "incoming":
    case "opened":
    case "close":
      return 1 + 4;
    case "open-failed":
      return 1 + 4 + 2 + reasonBytes(message.reason).length;
    case "data":
      return DATA_HEADER_LEN + message.data.length;
    case "credit":
      return 1 + 4 + 4;
    case "ping":
    case "pong":
      return 1;
    default:
      throw new TypeError(`unknown relay message type ${JSON.stringify(typeOf(message))}`);
  }
}

function encodeInto(message: RelayMessage, out: Uint8Array, start: number): void {
  let o = start;
  const u8 = (value: number) => {
    out[o++] = value;
  };
  const u32 = (value: number) => {
    writeU32(out, o, value);
    o += 4;
  };
  const bytes = (value: Uint8Array) => {
    out.set(value, o);
    o += value.length;
  };
  const address = (value: string, emptyAllowed: boolean) => {
    if (!(emptyAllowed && value === "")) checkAddress(value);
    u8(value.length);
    writeAscii(out, o, value);
    o += value.length;
  };
  const reason = (value: string) => {
    const raw = reasonBytes(value);
    out[o++] = raw.length >> 8;
    out[o++] = raw.length & 0xff;
    bytes(raw);
  };
  switch (message.type) {
    case "challenge":
      checkLength("challenge", message.challenge, RELAY_CHALLENGE_LEN);
      u8(RelayMessageType.CHALLENGE);
      bytes(message.challenge);
      break;
    case "register":
      checkLength("public key", message.publicKey, RELAY_PUBLIC_KEY_LEN);
      checkLength("signature", message.signature, RELAY_SIGNATURE_LEN);
      u8(RelayMessageType.REGISTER);
      bytes(message.publicKey);
      address(message.address, true);
      bytes(message.signature);
      break;
    case "registered":
      u8(RelayMessageType.REGISTERED);
      address(message.address, false);
      break;
    case "refused":
      u8(RelayMessageType.REFUSED);
      reason(message.reason);
      break;
    case "open":
      checkLinkId(message.linkId, false);
      u8(RelayMessageType.OPEN);
      u32(message.linkId);
      address(message.address, false);
      break;
    case "incoming":
      checkLinkId(message.linkId, true);
      u8(RelayMessageType.INCOMING);
      u32(message.linkId);
      break;
    case "opened":
      checkLinkId(message.linkId, false);
      u8(RelayMessageType.OPENED);
      u32(message.linkId);
      break;
    case "open-failed":
      checkLinkId(message.linkId, false);
      u8(RelayMessageType.OPEN_FAILED);
      u32(message.linkId);
      reason(message.reason);
      break;
    case "data":
      checkLinkId(message.linkId);
      if (message.data.length > MAX_LINK_MESSAGE_LEN) {
        throw new RangeError(
          `DATA of ${message.data.length} bytes exceeds the maximum of ${MAX_LINK_MESSAGE_LEN}`,
        );
      }
      u8(RelayMessageType.DATA);
      u32(message.linkId);
      bytes(message.data);
      break;
    case "credit":
      checkLinkId(message.linkId);
      if (!Number.isInteger(message.bytes) || message.bytes < 1 || message.bytes > MAX_LINK_ID) {
        throw new RangeError(`CREDIT must be 1 to 2^32-1 bytes, got ${message.bytes}`);
      }
      u8(RelayMessageType.CREDIT);
      u32(message.linkId);
      u32(message.bytes);
      break;
    case "close":
      checkLinkId(message.linkId);
      u8(RelayMessageType.CLOSE);
      u32(message.linkId);
      break;
    case "ping":
      u8(RelayMessageType.PING);
      break;
    case "pong":
      u8(RelayMessageType.PONG);
      break;
  }
}

function typeOf(message: unknown): unknown {
  return typeof message === "object" && message !== null
    ? (message as { type?: unknown }).type
    : message;
}

function reasonBytes(reason: string): Uint8Array {
  const raw = utf8Encoder.encode(reason);
  if (raw.length > MAX_REASON_LEN) {
    throw new RangeError(`reason of ${raw.length} bytes exceeds the maximum of ${MAX_REASON_LEN}`);
  }
  return raw;
}

function checkLength(what: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  if (value.length !== length) {
    throw new RangeError(`${what} must be ${length} bytes, got ${value.length}`);
  }
}

function checkAddress(address: string): void {
  if (!ADDRESS_PATTERN.test(address)) {
    throw new TypeError(
      `not a forwarding address: ${JSON.stringify(address)} ` +
        `(expected ${FORWARDING_ADDRESS_PREFIX} and 16 lower-case hex digits)`,
    );
  }
}

function checkLinkId(linkId: number, relayChosen?: boolean): void {
  if (!Number.isInteger(linkId) || linkId < 0 || linkId > MAX_LINK_ID) {
    throw new RangeError(`link id must be an integer from 0 to 2^32-1, got ${linkId}`);
  }
  if (relayChosen !== undefined && ((linkId & RELAY_LINK_ID_FLAG) !== 0) !== relayChosen) {
    throw new RangeError(
      `link id 0x${linkId.toString(16)} must have the top bit ${relayChosen ? "set" : "clear"}`,
    );
  }
}

function writeAscii(out: Uint8Array, offset: number, text: string): void {
  for (let i = 0; i < text.length; i++) out[offset + i] = text.charCodeAt(i);
}

/**
 * Reads a big-endian u32 at `offset` (no bounds check beyond the array's own).
 *
 * @param bytes The buffer.
 * @param offset Where the integer starts.
 * @returns The integer, 0 to 2^32-1.
 * @throws Never: bytes past the end read as 0, so check the length first.
 * @example
 * ```ts
 * const linkId = readU32(body, 1);
 * ```
 */
export function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) |
    bytes[offset + 3]!) >>> 0;
}

/**
 * Writes a big-endian u32 at `offset`.
 *
 * @param bytes The buffer.
 * @param offset Where the integer starts.
 * @param value 0 to 2^32-1.
 * @returns Nothing.
 * @throws Never.
 * @example
 * ```ts
 * writeU32(body, 1, peerLinkId); // translate a DATA message's link id in place
 * ```
 */
export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
}

/** Where a {@link BatchedFrameWriter} writes; a `Deno.Conn` is one. */
export interface FrameSink {
  /** Writes some of `bytes`, resolving to how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Options of {@link BatchedFrameWriter}. */
export interface BatchedFrameWriterOptions {
  /** Called once when a write fails; the writer has closed itself by then. */
  readonly onError: (error: Error) => void;
}

/**
 * A writer's batch buffer grows by doubling up to this size; beyond it, a burst fills further
 * buffers of this size, written one after the other, instead of growing one and copying it.
 * Up to {@link SPARE_BATCHES} buffers of at most this size are kept for reuse once written, so
 * a steady stream (64 KiB messages written as they come) allocates nothing; a writer idle
 * for {@link SPARE_IDLE_MS} keeps one.
 */
export const WRITE_BATCH_LEN = 256 * 1024;
/** Written batch buffers kept for reuse while busy (the one being filled is not counted). */
const SPARE_BATCHES = 4;
/** How long a writer stays idle before it lets all but one spare buffer go (about). */
const SPARE_IDLE_MS = 1000;

/**
 * The first batch buffer a writer allocates; it doubles as needed and a busy connection keeps
 * what it grew to. Small, because every idle connection keeps two (the relay's 10,000 idle sats
 * measured 16 KB each with 1 KiB here, 45 KB with 16 KiB: `deno task bench:idle`).
 */
const INITIAL_BATCH_LEN = 1024;
const EMPTY_BATCH = new Uint8Array(0);

/**
 * The size of a batch buffer that must hold at least `bytes`: the next power of two up to
 * {@link WRITE_BATCH_LEN}, so that a buffer grown by doubling ends at exactly that size and is
 * kept for reuse. (Doubling a 64 KiB frame's exact size overshot it by a few bytes, and the
 * grown buffer was dropped after its write instead of kept.)
 */
function batchLength(bytes: number): number {
  return bytes > WRITE_BATCH_LEN ? bytes : 2 ** Math.ceil(Math.log2(bytes));
}

/**
 * Queues frames for one byte stream and writes them in order, joining every frame queued while
 * a write was in flight into the next single write (fewer system calls under load, no added
 * latency: the first frame goes out as soon as the current task yields). Never blocks the
 * caller: callers bound what they queue (link credit) and watch
 * {@link BatchedFrameWriter.queuedBytes}.
 *
 * Frames are copied into reused batch buffers as they are queued: one is being written while
 * the next fills. So queuing costs a memory copy and no allocation (in Deno every new
 * ArrayBuffer costs about a microsecond, and a large one as much again to zero it), and the
 * caller may reuse its bytes at once, e.g. pass a view into a read buffer.
 *
 * @example
 * ```ts
 * const writer = new BatchedFrameWriter(conn, { onError: () => conn.close() });
 * writer.writeFrame(encodeRelayFrame({ type: "ping" }));
 * writer.writeBody(body); // a frame body: the writer adds the length prefix
 * writer.writeDataFrame(linkId, payload); // a DATA frame built straight into the batch
 * ```
 */
export class BatchedFrameWriter {
  readonly #sink: FrameSink;
  readonly #onError: (error: Error) => void;
  /** The batch being filled, and how many bytes of it are queued. */
  #batch: Uint8Array = EMPTY_BATCH;
  #batchLen = 0;
  /** Filled batches waiting for their write, oldest first, and their bytes in all. */
  readonly #full: Uint8Array[] = [];
  #fullLen = 0;
  /** Written batches ready to be filled again. */
  readonly #spares: Uint8Array[] = [];
  /** Bytes of the batch being written that are not yet written. */
  #writing = 0;
  #flushing = false;
  #closed = false;
  #task: Promise<void> = Promise.resolve();
  #drainWaiters: (() => void)[] = [];
  /** Flushes started; the idle sweep compares it with what it saw last time. */
  #flushes = 0;
  #flushesSwept = -1;

  /** Writers holding more than one spare, and the timer that trims the idle ones. */
  static readonly #holding = new Set<BatchedFrameWriter>();
  static #sweeper: ReturnType<typeof setInterval> | undefined;

  /**
   * @param sink Where the bytes go (the writer owns writing to it from now on).
   * @param options `onError`, told once when a write fails.
   */
  constructor(sink: FrameSink, options: BatchedFrameWriterOptions) {
    this.#sink = sink;
    this.#onError = options.onError;
  }

  /** Bytes queued or being written, length prefixes included. */
  get queuedBytes(): number {
    return this.#batchLen + this.#fullLen + this.#writing;
  }

  /** True once closed (by {@link BatchedFrameWriter.close} or a failed write). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes of the buffers kept for reuse (the batch being filled and the spares). */
  get retainedBytes(): number {
    let bytes = this.#batch.length;
    for (const spare of this.#spares) bytes += spare.length;
    return bytes;
  }

  /** Queues a whole frame (length prefix included), copied. Ignored once closed. */
  writeFrame(frame: Uint8Array): void {
    if (this.#closed) return;
    const at = this.#reserve(frame.length);
    this.#batch.set(frame, at);
  }

  /** Queues a frame body, copied; the length prefix is added here. Ignored once closed. */
  writeBody(body: Uint8Array): void {
    if (this.#closed) return;
    const at = this.#reserve(LENGTH_PREFIX_LEN + body.length);
    writeU32(this.#batch, at, body.length);
    this.#batch.set(body, at + LENGTH_PREFIX_LEN);
  }

  /**
   * Queues a whole DATA frame, the same bytes as {@link encodeDataFrame} gives, built straight
   * into the batch: the hot path of every link. Ignored once closed.
   *
   * @throws {RangeError} when the payload is too long or the id out of range.
   */
  writeDataFrame(linkId: number, payload: Uint8Array): void {
    checkLinkId(linkId);
    if (payload.length > MAX_LINK_MESSAGE_LEN) {
      throw new RangeError(
        `a link message of ${payload.length} bytes exceeds the maximum of ${MAX_LINK_MESSAGE_LEN}`,
      );
    }
    if (this.#closed) return;
    const at = this.#reserve(LENGTH_PREFIX_LEN + DATA_HEADER_LEN + payload.length);
    const batch = this.#batch;
    writeU32(batch, at, DATA_HEADER_LEN + payload.length);
    batch[at + LENGTH_PREFIX_LEN] = RelayMessageType.DATA;
    writeU32(batch, at + LENGTH_PREFIX_LEN + 1, linkId);
    batch.set(payload, at + LENGTH_PREFIX_LEN + DATA_HEADER_LEN);
  }

  /** Resolves once everything queued so far is written, or the writer is closed. */
  drain(): Promise<void> {
    if (this.#closed || (!this.#flushing && this.#batchLen === 0)) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Resolves once no write is in progress (call after closing the sink, before exiting). */
  settled(): Promise<void> {
    return this.#task;
  }

  /** Drops whatever is queued; later frames are ignored. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // The buffer being written, if any, stays referenced by that write until it settles.
    this.#batch = EMPTY_BATCH;
    this.#batchLen = 0;
    this.#full.length = 0;
    this.#fullLen = 0;
    this.#spares.length = 0;
    BatchedFrameWriter.#holding.delete(this);
    this.#writing = 0;
    this.#wakeDrainWaiters();
  }

  /** Room for `size` more bytes in the batch; returns where they go and counts them queued. */
  #reserve(size: number): number {
    let at = this.#batchLen;
    if (at + size > this.#batch.length) {
      if (at > 0 && this.#batch.length >= WRITE_BATCH_LEN) {
        // A burst: this batch is written as it is, and the frame starts the next one.
        this.#full.push(this.#batch.subarray(0, at));
        this.#fullLen += at;
        this.#batch = EMPTY_BATCH;
        this.#batchLen = at = 0;
      }
      if (at === 0) this.#batch = this.#spares.pop() ?? EMPTY_BATCH;
      if (at + size > this.#batch.length) {
        const least = this.#full.length > 0 ? WRITE_BATCH_LEN : INITIAL_BATCH_LEN;
        const grown = new Uint8Array(
          batchLength(Math.max(least, this.#batch.length * 2, at + size)),
        );
        grown.set(this.#batch.subarray(0, at));
        this.#batch = grown;
      }
    }
    this.#batchLen = at + size;
    if (!this.#flushing) {
      this.#flushing = true;
      this.#flushes++;
      // A microtask later, so that every frame queued by the current task joins one write.
      this.#task = Promise.resolve().then(() => this.#flush());
    }
    return at;
  }

  async #flush(): Promise<void> {
    try {
      while (!this.#closed && (this.#fullLen > 0 || this.#batchLen > 0)) {
        // The oldest filled batch is written while new frames go into the current one; the
        // current one is written once no filled one waits (the next frame takes a spare).
        let bytes = this.#full.shift();
        if (bytes) this.#fullLen -= bytes.length;
        else {
          bytes = this.#batch.subarray(0, this.#batchLen);
          this.#batch = EMPTY_BATCH;
          this.#batchLen = 0;
        }
        this.#writing = bytes.length;
        let offset = 0;
        while (offset < bytes.length) {
          offset += await this.#sink.write(bytes.subarray(offset));
          if (this.#closed) return;
          this.#writing = bytes.length - offset;
        }
        const written = new Uint8Array(bytes.buffer);
        if (written.length <= WRITE_BATCH_LEN && this.#spares.length < SPARE_BATCHES) {
          this.#spares.push(written);
          if (this.#spares.length === 2) BatchedFrameWriter.#hold(this);
        }
      }
    } catch (error) {
      if (!this.#closed) {
        this.close();
        this.#onError(error instanceof Error ? error : new Error(String(error)));
      }
    } finally {
      this.#flushing = false;
      this.#wakeDrainWaiters();
    }
  }

  /** Lets `writer`'s extra spares go once it has been idle for a sweep interval. */
  static #hold(writer: BatchedFrameWriter): void {
    const holding = BatchedFrameWriter.#holding;
    holding.add(writer);
    if (BatchedFrameWriter.#sweeper !== undefined) return;
    const sweeper = setInterval(() => {
      for (const held of holding) {
        if (held.#flushing || held.#flushes !== held.#flushesSwept) {
          held.#flushesSwept = held.#flushes; // Busy since the last sweep: next time.
          continue;
        }
        held.#spares.length = Math.min(held.#spares.length, 1);
        holding.delete(held);
      }
      if (holding.size === 0) {
        clearInterval(sweeper);
        BatchedFrameWriter.#sweeper = undefined;
      }
    }, SPARE_IDLE_MS);
    Deno.unrefTimer(Number(sweeper));
    BatchedFrameWriter.#sweeper = sweeper;
  }

  #wakeDrainWaiters(): void {
    if (this.#flushing && !this.#closed) return;
    for (const wake of this.#drainWaiters.splice(0)) wake();
  }
}
