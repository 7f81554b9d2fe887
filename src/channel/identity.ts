/**
 * Node identities: an Ed25519 key pair per node and the identifier derived from its public key.
 *
 * The identifier is `"I"` followed by the lower-case hex SHA-256 of the full 32-byte Ed25519
 * public key (64 hex digits, never truncated): short enough to paste into an allowlist, and
 * collision resistant, so two keys never share one.
 *
 * @module
 */

import { defaultBackend } from "./backends.ts";
import {
  type CryptoBackend,
  SIGNATURE_LEN,
  SIGNATURE_PUBLIC_KEY_LEN,
  SIGNATURE_SECRET_KEY_LEN,
} from "./crypto_backend.ts";

/** A node identifier: `"I"` and 64 lower-case hex digits (SHA-256 of the Ed25519 public key). */
export const IDENTIFIER_PATTERN: RegExp = /^I[0-9a-f]{64}$/;

/** The prefix of every identifier. */
export const IDENTIFIER_PREFIX = "I";

/** Length in bytes of the hash an identifier spells out in hex (SHA-256). */
export const IDENTIFIER_HASH_LEN = 32;

/** Options shared by the identity functions. */
export interface IdentityOptions {
  /** The crypto backend; default `defaultBackend()`. */
  readonly backend?: CryptoBackend;
}

function checkBytes(what: string, value: unknown, length: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${what} must be a Uint8Array, got ${describe(value)}`);
  }
  if (value.length !== length) {
    throw new RangeError(`${what} must be ${length} bytes, got ${value.length}`);
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}

/**
 * The identifier of an Ed25519 public key: `"I"` + lower-case hex SHA-256 of all 32 bytes.
 *
 * @param publicKey The 32-byte Ed25519 public key.
 * @param options `backend` to hash with (default `defaultBackend()`).
 * @returns A string matching {@link IDENTIFIER_PATTERN}.
 * @throws {TypeError} when `publicKey` is not a Uint8Array.
 * @throws {RangeError} when `publicKey` is not 32 bytes.
 * @example
 * ```ts
 * const id = identifierOf(identity.publicKey); // "I3f0c…" (65 characters)
 * ```
 */
export function identifierOf(publicKey: Uint8Array, options: IdentityOptions = {}): string {
  checkBytes("Ed25519 public key", publicKey, SIGNATURE_PUBLIC_KEY_LEN);
  const backend = options.backend ?? defaultBackend();
  return IDENTIFIER_PREFIX + backend.hash("SHA256").hash(publicKey).toHex();
}

/**
 * Is `value` a well-formed identifier (`"I"` and 64 lower-case hex digits)?
 *
 * @param value Anything.
 * @returns True when `value` is a string matching {@link IDENTIFIER_PATTERN}.
 * @throws Never.
 * @example
 * ```ts
 * isIdentifier("I" + "0".repeat(64)); // true
 * isIdentifier("I0A"); // false
 * ```
 */
export function isIdentifier(value: unknown): value is string {
  return typeof value === "string" && IDENTIFIER_PATTERN.test(value);
}

/**
 * A node's Ed25519 identity: signs with a secret key held in a private field.
 *
 * @example
 * ```ts
 * const me = Identity.generate();
 * const sig = me.sign(new TextEncoder().encode("hello"));
 * verifyIdentitySignature(me.publicKey, new TextEncoder().encode("hello"), sig); // true
 * ```
 */
export class Identity {
  /** The 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** `"I"` + hex SHA-256 of {@link Identity.publicKey}. */
  readonly identifier: string;
  readonly #secretKey: Uint8Array;
  readonly #backend: CryptoBackend;

  private constructor(secretKey: Uint8Array, backend: CryptoBackend) {
    this.#secretKey = secretKey;
    this.#backend = backend;
    this.publicKey = backend.signer.publicKeyOf(secretKey);
    this.identifier = identifierOf(this.publicKey, { backend });
  }

  /**
   * A new identity from a fresh random secret key.
   *
   * @param options `backend` (default `defaultBackend()`).
   * @returns The new identity.
   * @throws Whatever the backend throws when it cannot generate a key (not expected).
   * @example
   * ```ts
   * const me = Identity.generate();
   * ```
   */
  static generate(options: IdentityOptions = {}): Identity {
    const backend = options.backend ?? defaultBackend();
    return new Identity(backend.signer.generateSecretKey(), backend);
  }

  /**
   * The identity of a 32-byte Ed25519 secret key (seed). The bytes are copied.
   *
   * @param secretKey The 32-byte seed, e.g. from {@link Identity.exportSecretKey}.
   * @param options `backend` (default `defaultBackend()`).
   * @returns The identity.
   * @throws {TypeError} when `secretKey` is not a Uint8Array.
   * @throws {RangeError} when `secretKey` is not 32 bytes.
   * @example
   * ```ts
   * const again = Identity.fromSecretKey(me.exportSecretKey());
   * again.identifier === me.identifier; // true
   * ```
   */
  static fromSecretKey(secretKey: Uint8Array, options: IdentityOptions = {}): Identity {
    checkBytes("Ed25519 secret key", secretKey, SIGNATURE_SECRET_KEY_LEN);
    return new Identity(secretKey.slice(), options.backend ?? defaultBackend());
  }

  /**
   * Signs `message` with this identity's secret key (Ed25519, RFC 8032).
   *
   * @param message The bytes to sign.
   * @returns The 64-byte signature.
   * @throws {TypeError} when `message` is not a Uint8Array.
   * @example
   * ```ts
   * const sig = me.sign(handshakeHash);
   * ```
   */
  sign(message: Uint8Array): Uint8Array {
    if (!(message instanceof Uint8Array)) {
      throw new TypeError(`message to sign must be a Uint8Array, got ${describe(message)}`);
    }
    return this.#backend.signer.sign(this.#secretKey, message);
  }

  /**
   * A copy of the 32-byte secret key, for storing it (see `loadOrCreateIdentity`). Zero the
   * copy when done with it.
   *
   * @returns A new Uint8Array holding the seed.
   * @throws Never.
   * @example
   * ```ts
   * const seed = me.exportSecretKey();
   * ```
   */
  exportSecretKey(): Uint8Array {
    return this.#secretKey.slice();
  }

  /** Keeps the secret key out of `console.log` and `Deno.inspect` output. */
  [Symbol.for("Deno.customInspect")](): string {
    return `Identity { identifier: "${this.identifier}" }`;
  }

  /** Keeps the secret key out of `JSON.stringify`. */
  toJSON(): { identifier: string } {
    return { identifier: this.identifier };
  }
}

/**
 * Checks an Ed25519 signature made by {@link Identity.sign}.
 *
 * @param publicKey The signer's 32-byte public key.
 * @param message The signed bytes.
 * @param signature The 64-byte signature.
 * @param options `backend` (default `defaultBackend()`).
 * @returns True when the signature is valid; false on any mismatch or wrong-length input.
 * @throws Never for byte inputs: a malformed key or signature gives false.
 * @example
 * ```ts
 * if (!verifyIdentitySignature(peerKey, transcript, sig)) throw new Error("bad signature");
 * ```
 */
export function verifyIdentitySignature(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  options: IdentityOptions = {},
): boolean {
  if (
    !(publicKey instanceof Uint8Array) || publicKey.length !== SIGNATURE_PUBLIC_KEY_LEN ||
    !(message instanceof Uint8Array) ||
    !(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LEN
  ) {
    return false;
  }
  const backend = options.backend ?? defaultBackend();
  return backend.signer.verify(publicKey, message, signature);
}
