/**
 * CipherState (Noise spec rev 34 §5.1): a cipher key `k` and a 64-bit counter nonce `n`.
 *
 * @module
 */

import { type Aead, KEYLEN, MAX_NONCE } from "./crypto_backend.ts";

export { MAX_NONCE };

const EMPTY = new Uint8Array(0);
const ZEROS_32 = new Uint8Array(KEYLEN);

/** The 64-bit nonce counter reached 2^64-1: no further message may use this key (Noise §5.1). */
export class NonceExhaustedError extends RangeError {
  override readonly name = "NonceExhaustedError";
  constructor() {
    super("the 64-bit nonce counter is exhausted; the session must end and a new one begin");
  }
}

/**
 * A Noise CipherState. With no key it passes plaintext through (Noise §5.1, as used during the
 * first handshake messages). `destroy()` zeroes the key.
 *
 * @example
 * ```ts
 * const cs = new CipherState(nativeBackend.cipher("ChaChaPoly"));
 * cs.initializeKey(key);
 * const ct = cs.encryptWithAd(new Uint8Array(0), plaintext);
 * ```
 */
export class CipherState {
  readonly #aead: Aead;
  #k: Uint8Array | undefined;
  #n = 0n;

  /** A CipherState with no key (InitializeKey(empty)). */
  constructor(aead: Aead) {
    this.#aead = aead;
  }

  /** The cipher this state encrypts with. */
  get aead(): Aead {
    return this.#aead;
  }

  /** InitializeKey(key): sets k (copied) and n = 0. Throws RangeError unless key is 32 bytes. */
  initializeKey(key: Uint8Array): void {
    if (key.length !== KEYLEN) throw new RangeError(`cipher key must be ${KEYLEN} bytes`);
    this.#k?.fill(0);
    this.#k = key.slice();
    this.#n = 0n;
  }

  /** HasKey(). */
  hasKey(): boolean {
    return this.#k !== undefined;
  }

  /** The next nonce this state will use. */
  get nonce(): bigint {
    return this.#n;
  }

  /** SetNonce(n): for transports that carry the nonce explicitly (Noise §11.4). */
  setNonce(n: bigint): void {
    if (n < 0n || n > MAX_NONCE) throw new RangeError(`nonce ${n} is outside [0, 2^64-1]`);
    this.#n = n;
  }

  /**
   * EncryptWithAd(ad, plaintext). Throws NonceExhaustedError when n has reached 2^64-1. With
   * `out` (`plaintext.length + 16` bytes; a keyed state only) the ciphertext is written there.
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array, out?: Uint8Array): Uint8Array {
    if (this.#k === undefined) return plaintext;
    if (this.#n === MAX_NONCE) throw new NonceExhaustedError();
    const ciphertext = this.#aead.encrypt(this.#k, this.#n, ad, plaintext, out);
    this.#n++;
    return ciphertext;
  }

  /**
   * DecryptWithAd(ad, ciphertext). n advances only on success (Noise §5.1). Throws
   * AuthenticationError on a bad tag and NonceExhaustedError when n has reached 2^64-1.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.#k === undefined) return ciphertext;
    if (this.#n === MAX_NONCE) throw new NonceExhaustedError();
    const plaintext = this.#aead.decrypt(this.#k, this.#n, ad, ciphertext);
    this.#n++;
    return plaintext;
  }

  /** Rekey(): k = first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, 32 zero bytes) (Noise §4.2, §11.3). */
  rekey(): void {
    if (this.#k === undefined) throw new TypeError("cannot rekey a CipherState that has no key");
    const next = this.#aead.encrypt(this.#k, MAX_NONCE, EMPTY, ZEROS_32).subarray(0, KEYLEN);
    this.#k.set(next);
    next.fill(0);
  }

  /** A copy of this state (same key and nonce), for keeping an older epoch's key. */
  clone(): CipherState {
    const copy = new CipherState(this.#aead);
    if (this.#k !== undefined) copy.#k = this.#k.slice();
    copy.#n = this.#n;
    return copy;
  }

  /** Zeroes and forgets the key. */
  destroy(): void {
    this.#k?.fill(0);
    this.#k = undefined;
  }
}
