/**
 * One-time enrollment tickets: how a new sat gets trusted by a proxy it has never met.
 *
 * The proxy (the responder) issues a ticket and keeps only the SHA-256 of its secret. The
 * operator copies the ticket's text to the sat. The sat (the initiator) checks the proxy's
 * identifier against `responder` after the handshake, and sends {@link ticketPresentation}
 * inside the encrypted handshake; the proxy redeems it once (see `TrustPolicy.redeemTicket`).
 *
 * Text form: `stratos-ticket-1.` followed by the base64url encoding (RFC 4648 §5, no padding)
 * of this binary layout, 89 bytes, 119 characters, so the whole ticket is one shell-safe word
 * (`[A-Za-z0-9._-]` only):
 *
 * | offset | length | field                                                       |
 * |-------:|-------:|-------------------------------------------------------------|
 * |      0 |      1 | version, {@link TICKET_VERSION} (= 1)                       |
 * |      1 |     32 | responder: the raw SHA-256 its identifier spells in hex     |
 * |     33 |     16 | ticket id, random                                           |
 * |     49 |     32 | ticket secret, random                                       |
 * |     81 |      8 | expiry, milliseconds since the Unix epoch, unsigned big-endian |
 *
 * The ticket text holds a secret: never log it. Parse errors quote only its first characters.
 *
 * @module
 */

import { IDENTIFIER_HASH_LEN, IDENTIFIER_PREFIX, isIdentifier } from "./identity.ts";

/** The text every ticket starts with; the `1` is the text-form version. */
export const TICKET_PREFIX = "stratos-ticket-1.";
/** The binary layout version (first byte). */
export const TICKET_VERSION = 1;
/** Length in bytes of the version field. */
export const TICKET_VERSION_LEN = 1;
/** Length in bytes of a ticket id. */
export const TICKET_ID_LEN = 16;
/** Length in bytes of a ticket secret. */
export const TICKET_SECRET_LEN = 32;
/** Length in bytes of the expiry field. */
export const TICKET_EXPIRY_LEN = 8;
/** Length in bytes of the binary layout: version, responder hash, id, secret, expiry. */
export const TICKET_BINARY_LEN: number = TICKET_VERSION_LEN + IDENTIFIER_HASH_LEN +
  TICKET_ID_LEN + TICKET_SECRET_LEN + TICKET_EXPIRY_LEN;
/** Length in characters of a ticket's text form. */
export const TICKET_TEXT_LEN: number = TICKET_PREFIX.length + Math.ceil(TICKET_BINARY_LEN * 4 / 3);
/** Length in bytes of what the initiator sends to redeem a ticket: id || secret. */
export const TICKET_PRESENTATION_LEN: number = TICKET_ID_LEN + TICKET_SECRET_LEN;

const RESPONDER_OFFSET = TICKET_VERSION_LEN;
const ID_OFFSET = RESPONDER_OFFSET + IDENTIFIER_HASH_LEN;
const SECRET_OFFSET = ID_OFFSET + TICKET_ID_LEN;
const EXPIRY_OFFSET = SECRET_OFFSET + TICKET_SECRET_LEN;
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]*$/;
/** How much of a bad ticket an error message may quote: the prefix and a little more. */
const QUOTE_CHARS = 24;

/** An enrollment ticket. */
export interface Ticket {
  /** Identifier of the responder (proxy) that issued it. */
  readonly responder: string;
  /** 16 random bytes naming the ticket. */
  readonly id: Uint8Array;
  /** 32 random bytes proving possession. */
  readonly secret: Uint8Array;
  /** Expiry in milliseconds since the Unix epoch. */
  readonly expiresAt: number;
}

/**
 * The text form of a ticket: `stratos-ticket-1.` + base64url of the binary layout.
 *
 * @param ticket The ticket.
 * @returns One shell-safe word of {@link TICKET_TEXT_LEN} characters.
 * @throws {TypeError} when `responder` is not an identifier or a field has the wrong type.
 * @throws {RangeError} when `id` is not 16 bytes, `secret` not 32, or `expiresAt` is not a
 *   non-negative safe integer.
 * @example
 * ```ts
 * const text = encodeTicket({ responder, id, secret, expiresAt: Date.now() + 3_600_000 });
 * ```
 */
export function encodeTicket(ticket: Ticket): string {
  const { responder, id, secret, expiresAt } = ticket;
  if (!isIdentifier(responder)) {
    throw new TypeError(
      `ticket responder must be an identifier ("I" and 64 lower-case hex digits), got ${
        JSON.stringify(responder)
      }`,
    );
  }
  checkBytes("ticket id", id, TICKET_ID_LEN);
  checkBytes("ticket secret", secret, TICKET_SECRET_LEN);
  if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) {
    throw new RangeError(
      `ticket expiresAt must be a non-negative integer of milliseconds, got ${String(expiresAt)}`,
    );
  }
  const bytes = new Uint8Array(TICKET_BINARY_LEN);
  bytes[0] = TICKET_VERSION;
  bytes.set(Uint8Array.fromHex(responder.slice(IDENTIFIER_PREFIX.length)), RESPONDER_OFFSET);
  bytes.set(id, ID_OFFSET);
  bytes.set(secret, SECRET_OFFSET);
  new DataView(bytes.buffer).setBigUint64(EXPIRY_OFFSET, BigInt(expiresAt), false);
  const text = TICKET_PREFIX + bytes.toBase64({ alphabet: "base64url", omitPadding: true });
  bytes.fill(0);
  return text;
}

/**
 * Parses a ticket's text form. Leading and trailing white space (a pasted newline) is ignored.
 *
 * @param text The ticket text, from {@link encodeTicket}.
 * @returns The ticket; `id` and `secret` are fresh arrays.
 * @throws {SyntaxError} when the text is not a well-formed ticket: wrong prefix, wrong length,
 *   characters outside base64url, an unknown version or an out-of-range expiry. The message
 *   quotes only the start of the text, never the secret.
 * @example
 * ```ts
 * const ticket = parseTicket(Deno.args[0] ?? "");
 * ```
 */
export function parseTicket(text: string): Ticket {
  if (typeof text !== "string") {
    throw new SyntaxError(`a ticket must be a string, got ${typeof text}`);
  }
  const trimmed = text.trim();
  const quoted = JSON.stringify(
    trimmed.length > QUOTE_CHARS ? trimmed.slice(0, QUOTE_CHARS) + "…" : trimmed,
  );
  const fail = (what: string) =>
    new SyntaxError(
      `not a Stratos ticket ${quoted}: ${what}; ` +
        `copy the whole ${TICKET_TEXT_LEN}-character word starting with "${TICKET_PREFIX}" ` +
        "that the proxy printed",
    );
  if (!trimmed.startsWith(TICKET_PREFIX)) {
    if (trimmed.startsWith("stratos-ticket-")) throw fail("unsupported ticket version");
    throw fail(`it must start with "${TICKET_PREFIX}"`);
  }
  if (trimmed.length !== TICKET_TEXT_LEN) {
    throw fail(`expected ${TICKET_TEXT_LEN} characters, got ${trimmed.length} (truncated?)`);
  }
  const body = trimmed.slice(TICKET_PREFIX.length);
  if (!BASE64URL_PATTERN.test(body)) {
    throw fail("it contains characters outside base64url (A-Z a-z 0-9 - _)");
  }
  let bytes: Uint8Array;
  try {
    // "strict" wants the padding back but then rejects non-zero padding bits, so each ticket
    // has exactly one text form.
    const padded = body + "=".repeat((4 - body.length % 4) % 4);
    bytes = Uint8Array.fromBase64(padded, { alphabet: "base64url", lastChunkHandling: "strict" });
  } catch (error) {
    throw new SyntaxError(fail("its base64url does not decode").message, { cause: error });
  }
  if (bytes.length !== TICKET_BINARY_LEN) {
    throw fail(`it decodes to ${bytes.length} bytes, expected ${TICKET_BINARY_LEN}`);
  }
  if (bytes[0] !== TICKET_VERSION) {
    throw fail(`unsupported ticket layout version ${bytes[0]}`);
  }
  const expiry = new DataView(bytes.buffer).getBigUint64(EXPIRY_OFFSET, false);
  if (expiry > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw fail("its expiry is out of range");
  }
  const ticket: Ticket = {
    responder: IDENTIFIER_PREFIX +
      bytes.subarray(RESPONDER_OFFSET, RESPONDER_OFFSET + IDENTIFIER_HASH_LEN).toHex(),
    id: bytes.slice(ID_OFFSET, ID_OFFSET + TICKET_ID_LEN),
    secret: bytes.slice(SECRET_OFFSET, SECRET_OFFSET + TICKET_SECRET_LEN),
    expiresAt: Number(expiry),
  };
  bytes.fill(0);
  return ticket;
}

/**
 * What the initiator sends inside the encrypted handshake to redeem a ticket: id || secret.
 *
 * @param ticket The ticket.
 * @returns {@link TICKET_PRESENTATION_LEN} (48) fresh bytes; zero them after sending.
 * @throws {TypeError} when `id` or `secret` is not a Uint8Array.
 * @throws {RangeError} when `id` is not 16 bytes or `secret` not 32.
 * @example
 * ```ts
 * const payload = ticketPresentation(parseTicket(ticketText));
 * ```
 */
export function ticketPresentation(ticket: Ticket): Uint8Array {
  checkBytes("ticket id", ticket.id, TICKET_ID_LEN);
  checkBytes("ticket secret", ticket.secret, TICKET_SECRET_LEN);
  const out = new Uint8Array(TICKET_PRESENTATION_LEN);
  out.set(ticket.id, 0);
  out.set(ticket.secret, TICKET_ID_LEN);
  return out;
}

function checkBytes(what: string, value: unknown, length: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${what} must be a Uint8Array, got ${typeof value}`);
  }
  if (value.length !== length) {
    throw new RangeError(`${what} must be ${length} bytes, got ${value.length}`);
  }
}
