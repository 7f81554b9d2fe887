/**
 * HandshakeState (Noise spec rev 34 §5.3): one generic engine that runs any handshake pattern
 * from the data table in handshake_pattern.ts, token by token.
 *
 * It fails closed: the first error (bad tag, truncated message, low-order key, wrong turn)
 * destroys every key this state holds and every later call throws.
 *
 * @module
 */

import { type CryptoBackend, type Dh, DHLEN, type KeyPair, TAGLEN } from "./crypto_backend.ts";
import { CipherState } from "./cipher_state.ts";
import { SymmetricState } from "./symmetric_state.ts";
import type { Token } from "./handshake_pattern.ts";
import { type NoiseProtocol, parseProtocolName } from "./noise_protocol.ts";

/** The largest Noise message, handshake or transport (Noise §3). */
export const MAX_MESSAGE_LEN = 65535;
/** Length of a pre-shared key (Noise §9.1). */
export const PSKLEN = 32;

const EMPTY = new Uint8Array(0);

/** Options of a HandshakeState. */
export interface HandshakeStateOptions {
  /** The crypto implementation; required (see backends.ts for the default). */
  readonly backend: CryptoBackend;
  /** Prologue both sides must agree on (Noise §6); default empty. */
  readonly prologue?: Uint8Array;
  /** Our static key pair, when the pattern sends or pre-shares it. */
  readonly s?: KeyPair;
  /** The peer's static public key, when the pattern pre-shares it. */
  readonly rs?: Uint8Array;
  /** Pre-shared keys, in the order the pattern's psk tokens use them (Noise §9). */
  readonly psks?: readonly Uint8Array[];
  /**
   * Test seam for known-answer vectors: use this ephemeral key instead of a fresh random one.
   * Never reachable from configuration.
   */
  readonly ephemeralForTesting?: KeyPair;
}

/** The two transport CipherStates after Split, oriented for this party. */
export interface TransportCipherStates {
  /** Encrypts what this party sends. */
  readonly send: CipherState;
  /** Decrypts what this party receives. */
  readonly receive: CipherState;
}

/**
 * The handshake failed; `stage` is the index of the handshake message being written or read.
 * The message is deliberately generic; `cause` holds the detail for the local log.
 */
export class HandshakeError extends Error {
  override readonly name = "HandshakeError";
  /** Index of the handshake message (0 = the initiator's first). */
  readonly stage: number;
  constructor(stage: number, message: string, options?: ErrorOptions) {
    super(`handshake failed at message ${stage}: ${message}`, options);
    this.stage = stage;
  }
}

/**
 * A Noise HandshakeState for one party.
 *
 * @example
 * ```ts
 * const backend = defaultBackend();
 * const alice = new HandshakeState("Noise_NN_25519_ChaChaPoly_SHA256", true, { backend });
 * const bob = new HandshakeState("Noise_NN_25519_ChaChaPoly_SHA256", false, { backend });
 * bob.readMessage(alice.writeMessage(new Uint8Array(0)));
 * alice.readMessage(bob.writeMessage(new Uint8Array(0)));
 * const { send } = alice.split();
 * ```
 */
export class HandshakeState {
  readonly #protocol: NoiseProtocol;
  readonly #initiator: boolean;
  readonly #dh: Dh;
  readonly #symmetric: SymmetricState;
  readonly #psks: Uint8Array[];
  #s: KeyPair | undefined;
  #e: KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #ephemeralForTesting: KeyPair | undefined;
  #index = 0;
  #failed = false;
  #split = false;

  /**
   * Initialize(handshake_pattern, initiator, prologue, s, e, rs, re) (Noise §5.3).
   *
   * @param protocol a protocol name such as `Noise_XX_25519_ChaChaPoly_SHA256`, or a parsed one
   * @param initiator true for the party that sends the first message
   * @throws SyntaxError / UnsupportedProtocolError for a bad protocol name
   * @throws TypeError when a key the pattern needs is missing, RangeError for a wrong key size
   */
  constructor(
    protocol: NoiseProtocol | string,
    initiator: boolean,
    options: HandshakeStateOptions,
  ) {
    this.#protocol = typeof protocol === "string" ? parseProtocolName(protocol) : protocol;
    this.#initiator = initiator;
    this.#dh = options.backend.dh;
    const { pattern } = this.#protocol;
    this.#s = options.s;
    this.#rs = options.rs?.slice();
    this.#ephemeralForTesting = options.ephemeralForTesting;
    this.#psks = (options.psks ?? []).map((psk) => {
      if (psk.length !== PSKLEN) throw new RangeError(`a pre-shared key must be ${PSKLEN} bytes`);
      return psk.slice();
    });

    const ownMessages = pattern.messages.filter((_, i) => this.#sentByMe(i));
    const ownPre = initiator ? pattern.initiatorPreMessage : pattern.responderPreMessage;
    const remotePre = initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
    if ((ownPre.includes("s") || ownMessages.some((m) => m.includes("s"))) && !this.#s) {
      throw new TypeError(`${pattern.name} needs this party's static key pair (option s)`);
    }
    if (remotePre.includes("s") && !this.#rs) {
      throw new TypeError(`${pattern.name} needs the peer's static public key (option rs)`);
    }
    if (remotePre.includes("e") || ownPre.includes("e")) {
      throw new RangeError(`${pattern.name}: ephemeral pre-messages are not supported`);
    }
    const pskCount = pattern.messages.flat().filter((t) => t === "psk").length;
    if (this.#psks.length < pskCount) {
      throw new TypeError(`${pattern.name} needs ${pskCount} pre-shared key(s) (option psks)`);
    }
    for (const key of [this.#s?.publicKey, this.#s?.privateKey, this.#rs]) {
      if (key && key.length !== DHLEN) throw new RangeError(`X25519 keys are ${DHLEN} bytes`);
    }

    const backend = options.backend;
    this.#symmetric = new SymmetricState(
      this.#protocol.name,
      backend.cipher(this.#protocol.cipher),
      backend.hash(this.#protocol.hash),
    );
    this.#symmetric.mixHash(options.prologue ?? EMPTY);
    // Pre-message keys: the initiator's are always hashed first (Noise §5.3, §7.1).
    const initiatorStatic = initiator ? this.#s?.publicKey : this.#rs;
    const responderStatic = initiator ? this.#rs : this.#s?.publicKey;
    if (pattern.initiatorPreMessage.includes("s")) this.#symmetric.mixHash(initiatorStatic!);
    if (pattern.responderPreMessage.includes("s")) this.#symmetric.mixHash(responderStatic!);
  }

  /** The resolved protocol. */
  get protocol(): NoiseProtocol {
    return this.#protocol;
  }

  /** True for the party that sent the first message. */
  get isInitiator(): boolean {
    return this.#initiator;
  }

  /** Index of the next handshake message to be written or read. */
  get messageIndex(): number {
    return this.#index;
  }

  /** True when every handshake message has been written or read. */
  get isComplete(): boolean {
    return !this.#failed && this.#index >= this.#protocol.pattern.messages.length;
  }

  /** True when the next handshake message is ours to write. */
  get isMyTurn(): boolean {
    return !this.isComplete && this.#sentByMe(this.#index);
  }

  /** The peer's static public key once known (rs). */
  get remoteStaticKey(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /** The handshake hash h (Noise §11.2): a unique, secret-free name for this session. */
  handshakeHash(): Uint8Array {
    return this.#symmetric.handshakeHash();
  }

  /**
   * WriteMessage(payload, message_buffer): the next handshake message carrying `payload`.
   *
   * @throws TypeError when it is not our turn or the state has failed
   * @throws RangeError when the message would exceed MAX_MESSAGE_LEN (nothing changes)
   * @throws HandshakeError on any crypto failure (the state is destroyed)
   */
  writeMessage(payload: Uint8Array): Uint8Array {
    this.#assertTurn(true);
    const tokens = this.#protocol.pattern.messages[this.#index]!;
    const size = this.#messageSize(tokens, payload.length);
    if (size > MAX_MESSAGE_LEN) {
      throw new RangeError(`handshake message of ${size} bytes exceeds ${MAX_MESSAGE_LEN}`);
    }
    return this.#guard(() => {
      const out = new Uint8Array(size);
      let offset = 0;
      const put = (bytes: Uint8Array) => {
        out.set(bytes, offset);
        offset += bytes.length;
      };
      for (const token of tokens) {
        if (token === "e") {
          this.#e = this.#ephemeralForTesting ?? this.#dh.generateKeyPair();
          this.#ephemeralForTesting = undefined;
          put(this.#e.publicKey);
          this.#symmetric.mixHash(this.#e.publicKey);
          if (this.#protocol.pattern.psk) this.#symmetric.mixKey(this.#e.publicKey);
        } else if (token === "s") {
          put(this.#symmetric.encryptAndHash(this.#s!.publicKey));
        } else {
          this.#mixToken(token);
        }
      }
      put(this.#symmetric.encryptAndHash(payload));
      this.#index++;
      return out;
    });
  }

  /**
   * ReadMessage(message, payload_buffer): processes the peer's next handshake message.
   *
   * @returns the decrypted payload
   * @throws TypeError when it is not the peer's turn or the state has failed
   * @throws HandshakeError when the message is oversized, truncated, fails authentication or
   *   carries a low-order key (the state is destroyed)
   */
  readMessage(message: Uint8Array): Uint8Array {
    this.#assertTurn(false);
    return this.#guard(() => {
      if (message.length > MAX_MESSAGE_LEN) {
        throw new RangeError(`message of ${message.length} bytes exceeds ${MAX_MESSAGE_LEN}`);
      }
      const tokens = this.#protocol.pattern.messages[this.#index]!;
      let offset = 0;
      const take = (length: number): Uint8Array => {
        if (offset + length > message.length) throw new RangeError("message is truncated");
        const bytes = message.subarray(offset, offset + length);
        offset += length;
        return bytes;
      };
      for (const token of tokens) {
        if (token === "e") {
          this.#re = take(DHLEN).slice();
          this.#symmetric.mixHash(this.#re);
          if (this.#protocol.pattern.psk) this.#symmetric.mixKey(this.#re);
        } else if (token === "s") {
          const length = DHLEN + (this.#symmetric.hasKey() ? TAGLEN : 0);
          this.#rs = this.#symmetric.decryptAndHash(take(length)).slice();
        } else {
          this.#mixToken(token);
        }
      }
      const rest = message.subarray(offset);
      if (this.#symmetric.hasKey() && rest.length < TAGLEN) {
        throw new RangeError("message is truncated");
      }
      const payload = this.#symmetric.decryptAndHash(rest);
      this.#index++;
      return payload.slice();
    });
  }

  /**
   * Split() (Noise §5.2) once the handshake is complete, oriented for this party. The
   * handshake's own keys are destroyed; the handshake hash stays readable.
   *
   * @throws TypeError before completion or when called twice
   */
  split(): TransportCipherStates {
    if (!this.isComplete) throw new TypeError("split() before the handshake is complete");
    if (this.#split) throw new TypeError("split() was already called");
    this.#split = true;
    const [c1, c2] = this.#symmetric.split();
    this.#wipeKeys();
    return this.#initiator ? { send: c1, receive: c2 } : { send: c2, receive: c1 };
  }

  /** Destroys every key this state holds; later calls throw. */
  destroy(): void {
    this.#failed = true;
    this.#symmetric.destroy();
    this.#wipeKeys();
  }

  #sentByMe(index: number): boolean {
    const byInitiator = this.#protocol.pattern.oneWay || index % 2 === 0;
    return byInitiator === this.#initiator;
  }

  #assertTurn(writing: boolean): void {
    if (this.#failed) throw new TypeError("this handshake has failed or was destroyed");
    if (this.#index >= this.#protocol.pattern.messages.length) {
      throw new TypeError("the handshake is already complete");
    }
    if (this.#sentByMe(this.#index) !== writing) {
      throw new TypeError(
        writing ? "it is the peer's turn to send" : "it is our turn to send, not to read",
      );
    }
  }

  #guard<T>(step: () => T): T {
    try {
      return step();
    } catch (cause) {
      const stage = this.#index;
      this.destroy();
      throw new HandshakeError(stage, (cause as Error).message, { cause });
    }
  }

  /** Exact size of the message a token list writes, tracking when a key appears. */
  #messageSize(tokens: readonly Token[], payloadLength: number): number {
    let hasKey = this.#symmetric.hasKey();
    let size = 0;
    for (const token of tokens) {
      if (token === "e") {
        size += DHLEN;
        if (this.#protocol.pattern.psk) hasKey = true;
      } else if (token === "s") size += DHLEN + (hasKey ? TAGLEN : 0);
      else hasKey = true;
    }
    return size + payloadLength + (hasKey ? TAGLEN : 0);
  }

  #mixToken(token: Token): void {
    if (token === "psk") {
      const psk = this.#psks.shift()!;
      this.#symmetric.mixKeyAndHash(psk);
      psk.fill(0);
      return;
    }
    // For "es" the initiator uses its e and the responder its s; "se" is the mirror (Noise §5.3).
    const [mine, theirs] = token === "ee"
      ? [this.#e, this.#re]
      : token === "ss"
      ? [this.#s, this.#rs]
      : (token === "es") === this.#initiator
      ? [this.#e, this.#rs]
      : [this.#s, this.#re];
    if (!mine || !theirs) throw new TypeError(`token "${token}" needs a key that is missing`);
    const shared = this.#dh.dh(mine, theirs);
    this.#symmetric.mixKey(shared);
    shared.fill(0);
  }

  #wipeKeys(): void {
    // Our ephemeral private key is never needed after the handshake (Noise §5.3).
    this.#e?.privateKey.fill(0);
    this.#e = undefined;
    for (const psk of this.#psks) psk.fill(0);
    this.#psks.length = 0;
  }
}
