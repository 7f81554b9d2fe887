/**
 * SymmetricState (Noise spec rev 34 §5.2): chaining key `ck`, handshake hash `h`, and a
 * CipherState.
 *
 * @module
 */

import { type Aead, type Hash, KEYLEN } from "./crypto_backend.ts";
import { CipherState } from "./cipher_state.ts";

const EMPTY = new Uint8Array(0);
const BYTE_1 = Uint8Array.of(1);
const BYTE_2 = Uint8Array.of(2);
const BYTE_3 = Uint8Array.of(3);

/**
 * HKDF(chaining_key, input_key_material, num_outputs) exactly as Noise §4.3 defines it.
 *
 * @returns two or three HASHLEN-byte outputs
 */
export function hkdf(
  hash: Hash,
  chainingKey: Uint8Array,
  inputKeyMaterial: Uint8Array,
  numOutputs: 2 | 3,
): Uint8Array[] {
  const tempKey = hash.hmac(chainingKey, inputKeyMaterial);
  const output1 = hash.hmac(tempKey, BYTE_1);
  const output2 = hash.hmac(tempKey, output1, BYTE_2);
  if (numOutputs === 2) {
    tempKey.fill(0);
    return [output1, output2];
  }
  const output3 = hash.hmac(tempKey, output2, BYTE_3);
  tempKey.fill(0);
  return [output1, output2, output3];
}

/** A Noise SymmetricState for one handshake. */
export class SymmetricState {
  readonly #hash: Hash;
  readonly #cipherState: CipherState;
  #ck: Uint8Array;
  #h: Uint8Array;

  /**
   * InitializeSymmetric(protocol_name): h = name padded with zeros when it fits in HASHLEN,
   * else HASH(name); ck = h.
   */
  constructor(protocolName: string, aead: Aead, hash: Hash) {
    this.#hash = hash;
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= hash.hashLen) {
      this.#h = new Uint8Array(hash.hashLen);
      this.#h.set(name);
    } else {
      this.#h = hash.hash(name);
    }
    this.#ck = this.#h.slice();
    this.#cipherState = new CipherState(aead);
  }

  /** MixKey(input_key_material). */
  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempK] = hkdf(this.#hash, this.#ck, inputKeyMaterial, 2) as [
      Uint8Array,
      Uint8Array,
    ];
    this.#replaceCk(ck);
    // Noise §5.2: with a 64-byte hash, temp_k is truncated to 32 bytes.
    this.#cipherState.initializeKey(tempK.subarray(0, KEYLEN));
    tempK.fill(0);
  }

  /** MixHash(data): h = HASH(h || data). */
  mixHash(data: Uint8Array): void {
    this.#h = this.#hash.hash(this.#h, data);
  }

  /** MixKeyAndHash(input_key_material), used for pre-shared keys (Noise §5.2, §9). */
  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [ck, tempH, tempK] = hkdf(this.#hash, this.#ck, inputKeyMaterial, 3) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    this.#replaceCk(ck);
    this.mixHash(tempH);
    this.#cipherState.initializeKey(tempK.subarray(0, KEYLEN));
    tempK.fill(0);
  }

  /** GetHandshakeHash(): a copy of h. */
  handshakeHash(): Uint8Array {
    return this.#h.slice();
  }

  /** Whether the inner CipherState has a key yet. */
  hasKey(): boolean {
    return this.#cipherState.hasKey();
  }

  /** EncryptAndHash(plaintext). Throws what CipherState.encryptWithAd throws. */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cipherState.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** DecryptAndHash(ciphertext). Throws AuthenticationError on a bad tag. */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cipherState.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /**
   * Split(): two CipherStates, the first for initiator-to-responder messages, the second for
   * responder-to-initiator. Zeroes the chaining key and this state's cipher key.
   */
  split(): [CipherState, CipherState] {
    const [tempK1, tempK2] = hkdf(this.#hash, this.#ck, EMPTY, 2) as [Uint8Array, Uint8Array];
    const aead = this.#cipherState.aead;
    const c1 = new CipherState(aead);
    const c2 = new CipherState(aead);
    c1.initializeKey(tempK1.subarray(0, KEYLEN));
    c2.initializeKey(tempK2.subarray(0, KEYLEN));
    tempK1.fill(0);
    tempK2.fill(0);
    this.destroy();
    return [c1, c2];
  }

  /** Zeroes the chaining key and the cipher key. */
  destroy(): void {
    this.#ck.fill(0);
    this.#cipherState.destroy();
  }

  #replaceCk(ck: Uint8Array): void {
    this.#ck.fill(0);
    this.#ck = ck;
  }
}
