/**
 * The narrow crypto interface the Noise engine runs on (Noise spec rev 34 §4).
 *
 * Two backends implement it: a portable one on @noble/* (pure JS, runs anywhere) and a native
 * one on Deno's built-in `node:crypto` (OpenSSL, several times faster). Both must pass the same
 * conformance and vector suites; nothing outside the backends imports a crypto primitive.
 *
 * @module
 */

/** Length in bytes of an X25519 public key, private key and shared secret (Noise §12.1). */
export const DHLEN = 32;
/** Length in bytes of an AEAD authentication tag (Noise §5.1). */
export const TAGLEN = 16;
/** Length in bytes of a cipher key (Noise §5.1). */
export const KEYLEN = 32;
/** Length in bytes of the 96-bit AEAD nonce both ciphers take (Noise §12.3, §12.4). */
export const NONCE_LEN = 12;
/** 2^64 - 1, the largest 64-bit nonce counter; Noise §5.1 reserves it for REKEY. */
export const MAX_NONCE: bigint = 0xffff_ffff_ffff_ffffn;
/** Length in bytes of an Ed25519 public key. */
export const SIGNATURE_PUBLIC_KEY_LEN = 32;
/** Length in bytes of an Ed25519 secret key (seed). */
export const SIGNATURE_SECRET_KEY_LEN = 32;
/** Length in bytes of an Ed25519 signature. */
export const SIGNATURE_LEN = 64;

/** Noise cipher function names (Noise §12.3, §12.4). */
export type CipherName = "ChaChaPoly" | "AESGCM";
/** Noise hash function names (Noise §12.5 - §12.8). */
export type HashName = "SHA256" | "SHA512" | "BLAKE2s" | "BLAKE2b";
/** Noise DH function names this project implements (Noise §12.1). */
export type DhName = "25519";

/** A Diffie-Hellman key pair; both halves are raw 32-byte strings. */
export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

/** X25519 as Noise uses it (Noise §4.1, §12.1). */
export interface Dh {
  readonly name: DhName;
  readonly dhLen: number;
  /** A fresh key pair from a CSPRNG. */
  generateKeyPair(): KeyPair;
  /** The key pair for a given 32-byte private key. Throws RangeError on a wrong length. */
  keyPairFromPrivate(privateKey: Uint8Array): KeyPair;
  /**
   * X25519(privateKey, publicKey). Throws RangeError on a wrong key length and Error when the
   * result is all zeros (a low-order public key: Noise §12.1 allows refusing it, we always do).
   */
  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array;
}

/** An AEAD cipher as Noise uses it (Noise §4.2): 32-byte key, 64-bit counter nonce. */
export interface Aead {
  readonly name: CipherName;
  /**
   * ENCRYPT(k, n, ad, plaintext): ciphertext with the 16-byte tag appended. The nonce is
   * formatted per cipher (ChaChaPoly: 4 zero bytes + 8-byte little-endian n; AESGCM: 4 zero
   * bytes + 8-byte big-endian n). `n` must be in [0, 2^64-1]. With `out` (exactly
   * `plaintext.length + 16` bytes, not overlapping `plaintext`) the result is written there and
   * `out` returned: a sender that frames it saves a buffer and a copy.
   */
  encrypt(
    k: Uint8Array,
    n: bigint,
    ad: Uint8Array,
    plaintext: Uint8Array,
    out?: Uint8Array,
  ): Uint8Array;
  /** DECRYPT(k, n, ad, ciphertext). Throws AuthenticationError when the tag does not verify. */
  decrypt(k: Uint8Array, n: bigint, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
}

/** A hash function with its HMAC (Noise §4.3). */
export interface Hash {
  readonly name: HashName;
  /** HASHLEN: 32 for SHA256 and BLAKE2s, 64 for SHA512 and BLAKE2b. */
  readonly hashLen: number;
  /** BLOCKLEN: 64 for SHA256 and BLAKE2s, 128 for SHA512 and BLAKE2b. */
  readonly blockLen: number;
  /** HASH(parts[0] || parts[1] || ...). */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** HMAC-HASH(key, parts[0] || parts[1] || ...) per RFC 2104. */
  hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
}

/** Ed25519 signatures (RFC 8032), used for node identities. */
export interface Signer {
  /** A fresh secret key (32-byte seed) from a CSPRNG. */
  generateSecretKey(): Uint8Array;
  /** The 32-byte public key of a 32-byte secret key. */
  publicKeyOf(secretKey: Uint8Array): Uint8Array;
  /** A 64-byte signature of `message`. */
  sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array;
  /** True when `signature` is valid for `message` under `publicKey`; false on any malformed input. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

/** Everything the channel needs from a crypto implementation. */
export interface CryptoBackend {
  /** "native" (node:crypto) or "portable" (@noble/*). */
  readonly name: string;
  readonly dh: Dh;
  readonly signer: Signer;
  /** The cipher for a Noise cipher name. */
  cipher(name: CipherName): Aead;
  /** The hash for a Noise hash name. */
  hash(name: HashName): Hash;
}

/** The parts a backend is made of: its primitives by Noise name. */
export interface BackendParts {
  readonly name: string;
  readonly dh: Dh;
  readonly signer: Signer;
  readonly ciphers: Readonly<Record<CipherName, Aead>>;
  readonly hashes: Readonly<Record<HashName, Hash>>;
}

/**
 * A CryptoBackend from its parts; `cipher` and `hash` throw RangeError on an unknown name.
 *
 * @example
 * ```ts
 * export const myBackend = backendFrom({ name: "mine", dh, signer, ciphers, hashes });
 * ```
 */
export function backendFrom(parts: BackendParts): CryptoBackend {
  const { name, dh, signer, ciphers, hashes } = parts;
  return {
    name,
    dh,
    signer,
    cipher(cipherName: CipherName): Aead {
      const aead = Object.hasOwn(ciphers, cipherName) ? ciphers[cipherName] : undefined;
      if (aead === undefined) throw new RangeError(`unknown cipher name "${cipherName}"`);
      return aead;
    },
    hash(hashName: HashName): Hash {
      const hash = Object.hasOwn(hashes, hashName) ? hashes[hashName] : undefined;
      if (hash === undefined) throw new RangeError(`unknown hash name "${hashName}"`);
      return hash;
    },
  };
}

/** An AEAD tag did not verify: the ciphertext, the key, the nonce or the ad is wrong. */
export class AuthenticationError extends Error {
  override readonly name = "AuthenticationError";
  constructor(message = "AEAD authentication failed", options?: ErrorOptions) {
    super(message, options);
  }
}

/** Is `name` a cipher name this project implements? */
export function isCipherName(name: string): name is CipherName {
  return name === "ChaChaPoly" || name === "AESGCM";
}

/** Is `name` a hash name this project implements? */
export function isHashName(name: string): name is HashName {
  return name === "SHA256" || name === "SHA512" || name === "BLAKE2s" || name === "BLAKE2b";
}
