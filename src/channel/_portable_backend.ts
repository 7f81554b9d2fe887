/**
 * The portable crypto backend: pure JavaScript on @noble/ciphers, @noble/curves and
 * @noble/hashes (audited, no native code), so it runs on any JavaScript runtime.
 *
 * Nonces (Noise §12.3, §12.4): ChaChaPoly takes 4 zero bytes then the 64-bit counter
 * little-endian; AESGCM takes 4 zero bytes then the counter big-endian.
 *
 * @module
 */

import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { gcm } from "@noble/ciphers/aes.js";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { blake2b, blake2s } from "@noble/hashes/blake2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import {
  type Aead,
  AuthenticationError,
  backendFrom,
  type CipherName,
  type CryptoBackend,
  type Dh,
  DHLEN,
  type Hash,
  type HashName,
  KEYLEN,
  type KeyPair,
  MAX_NONCE,
  NONCE_LEN,
  SIGNATURE_LEN,
  SIGNATURE_PUBLIC_KEY_LEN,
  SIGNATURE_SECRET_KEY_LEN,
  type Signer,
  TAGLEN,
} from "./crypto_backend.ts";

function checkLength(what: string, bytes: Uint8Array, expected: number): void {
  if (bytes.length !== expected) {
    throw new RangeError(`${what} must be ${expected} bytes, got ${bytes.length}`);
  }
}

function checkNonce(n: bigint): void {
  if (n < 0n || n > MAX_NONCE) {
    throw new RangeError(`nonce must be in [0, 2^64-1], got ${n}`);
  }
}

/** ChaChaPoly nonce: 4 zero bytes + 8-byte little-endian n (Noise §12.3). */
function chachaNonce(n: bigint): Uint8Array {
  checkNonce(n);
  const nonce = new Uint8Array(NONCE_LEN);
  new DataView(nonce.buffer).setBigUint64(4, n, true);
  return nonce;
}

/** AESGCM nonce: 4 zero bytes + 8-byte big-endian n (Noise §12.4). */
function gcmNonce(n: bigint): Uint8Array {
  checkNonce(n);
  const nonce = new Uint8Array(NONCE_LEN);
  new DataView(nonce.buffer).setBigUint64(4, n, false);
  return nonce;
}

/** A @noble/ciphers AEAD: `(key, nonce, ad)` to an object that encrypts or decrypts once. */
type NobleAead = typeof chacha20poly1305 | typeof gcm;

function makeAead(
  name: CipherName,
  construct: NobleAead,
  nonceOf: (n: bigint) => Uint8Array,
): Aead {
  return {
    name,
    encrypt(k, n, ad, plaintext, out) {
      checkLength(`${name} key`, k, KEYLEN);
      if (out) checkLength(`${name} output`, out, plaintext.length + TAGLEN);
      const ciphertext = construct(k, nonceOf(n), ad).encrypt(plaintext);
      if (!out) return ciphertext;
      out.set(ciphertext);
      return out;
    },
    decrypt(k, n, ad, ciphertext) {
      checkLength(`${name} key`, k, KEYLEN);
      const nonce = nonceOf(n);
      if (ciphertext.length < TAGLEN) {
        throw new AuthenticationError(
          `${name}: ciphertext of ${ciphertext.length} bytes is shorter than the ${TAGLEN}-byte tag`,
        );
      }
      try {
        return construct(k, nonce, ad).decrypt(ciphertext);
      } catch (cause) {
        throw new AuthenticationError(`${name}: authentication tag did not verify`, { cause });
      }
    },
  };
}

const CIPHERS: Readonly<Record<CipherName, Aead>> = {
  ChaChaPoly: makeAead("ChaChaPoly", chacha20poly1305, chachaNonce),
  AESGCM: makeAead("AESGCM", gcm, gcmNonce),
};

/** Any @noble/hashes hash: a callable with `.create()`, which is what `hmac` takes too. */
type NobleHash = typeof sha256 | typeof sha512 | typeof blake2s | typeof blake2b;

function makeHash(name: HashName, hashLen: number, blockLen: number, h: NobleHash): Hash {
  return {
    name,
    hashLen,
    blockLen,
    hash(...parts) {
      const state = h.create();
      for (const part of parts) state.update(part);
      return state.digest();
    },
    hmac(key, ...parts) {
      const state = hmac.create(h, key);
      for (const part of parts) state.update(part);
      return state.digest();
    },
  };
}

const HASHES: Readonly<Record<HashName, Hash>> = {
  SHA256: makeHash("SHA256", 32, 64, sha256),
  SHA512: makeHash("SHA512", 64, 128, sha512),
  BLAKE2s: makeHash("BLAKE2s", 32, 64, blake2s),
  BLAKE2b: makeHash("BLAKE2b", 64, 128, blake2b),
};

const dh: Dh = {
  name: "25519",
  dhLen: DHLEN,
  generateKeyPair(): KeyPair {
    const privateKey = x25519.utils.randomSecretKey();
    return { publicKey: x25519.getPublicKey(privateKey), privateKey };
  },
  keyPairFromPrivate(privateKey: Uint8Array): KeyPair {
    checkLength("X25519 private key", privateKey, DHLEN);
    const copy = privateKey.slice();
    return { publicKey: x25519.getPublicKey(copy), privateKey: copy };
  },
  dh(keyPair: KeyPair, publicKey: Uint8Array): Uint8Array {
    checkLength("X25519 private key", keyPair.privateKey, DHLEN);
    checkLength("X25519 public key", publicKey, DHLEN);
    try {
      // Rejects low-order points: an all-zero result (Noise §12.1, RFC 7748 §6.1).
      return x25519.getSharedSecret(keyPair.privateKey, publicKey);
    } catch (cause) {
      throw new Error("X25519: low-order public key (all-zero shared secret)", { cause });
    }
  },
};

const signer: Signer = {
  generateSecretKey(): Uint8Array {
    return ed25519.utils.randomSecretKey();
  },
  publicKeyOf(secretKey: Uint8Array): Uint8Array {
    checkLength("Ed25519 secret key", secretKey, SIGNATURE_SECRET_KEY_LEN);
    return ed25519.getPublicKey(secretKey);
  },
  sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array {
    checkLength("Ed25519 secret key", secretKey, SIGNATURE_SECRET_KEY_LEN);
    return ed25519.sign(message, secretKey);
  },
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (publicKey.length !== SIGNATURE_PUBLIC_KEY_LEN || signature.length !== SIGNATURE_LEN) {
      return false;
    }
    try {
      // zip215: false = strict RFC 8032 decoding, the same rules OpenSSL applies.
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
};

/**
 * The portable backend on @noble/* (pure JavaScript).
 *
 * Its key-length checks throw RangeError; AEAD decryption throws AuthenticationError; dh throws
 * Error on a low-order public key.
 *
 * @example
 * ```ts
 * const aead = portableBackend.cipher("ChaChaPoly");
 * const ct = aead.encrypt(new Uint8Array(32), 0n, new Uint8Array(), new Uint8Array([1, 2]));
 * ```
 */
export const portableBackend: CryptoBackend = backendFrom({
  name: "portable",
  dh,
  signer,
  ciphers: CIPHERS,
  hashes: HASHES,
});
