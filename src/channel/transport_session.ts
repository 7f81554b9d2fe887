/**
 * Transport phase of a Stratos channel: Noise transport messages (Noise spec rev 34 §5, §11)
 * with explicit nonces, a replay window, periodic rekey, and fail-closed error handling.
 *
 * Wire format of one frame (the unit a MessageTransport moves):
 *
 * ```
 * offset  size  field
 * 0       1     type: 1 = data, 2 = close (authenticated end of the session),
 *               3 = ready (the responder accepted the initiator; sent once, first),
 *               4 = batch (several application messages in one Noise message)
 * 1       8     n: the 64-bit nonce, big-endian
 * 9       rest  the Noise transport message: ENCRYPT(k_epoch, n, ad = bytes 0..8, payload)
 * ```
 *
 * A data frame's payload is one application message. A batch frame's payload is one or more
 * application messages, each as a 2-byte big-endian length L and L bytes, back to back, with
 * nothing after the last: it carries several small messages for the fixed cost of one AEAD
 * call and one frame (see SecureChannel.send). A batch that does not parse exactly, once
 * authenticated, ends the session like any malformed frame.
 *
 * The sender's n counts every frame from 0 and never resets. Every REKEY_INTERVAL frames both
 * directions move to the next key epoch, k_{e+1} = REKEY(k_e) (Noise §11.3), so the epoch of a
 * frame is n / REKEY_INTERVAL and reordered frames near a boundary still open. The receiver
 * accepts each n at most once and only within REPLAY_WINDOW of the highest n it has accepted
 * (a sliding bitmap, as in RFC 6479): duplicates and older frames are dropped, the session
 * goes on. A frame that is truncated, oversized, of unknown type or fails authentication ends
 * the session and zeroes its keys.
 *
 * @module
 */

import { CipherState, MAX_NONCE } from "./cipher_state.ts";
import { TAGLEN } from "./crypto_backend.ts";
import { MAX_MESSAGE_LEN, type TransportCipherStates } from "./handshake_state.ts";

/** Size of the cleartext frame header (type + nonce). */
export const FRAME_HEADER_LEN = 9;
/** Largest frame on the wire: header + a maximal Noise message. */
export const MAX_FRAME_LEN: number = FRAME_HEADER_LEN + MAX_MESSAGE_LEN;
/** Largest payload one frame carries. */
export const MAX_PAYLOAD_LEN: number = MAX_MESSAGE_LEN - TAGLEN;
/** How many nonces behind the highest accepted one a frame may arrive and still be accepted. */
export const REPLAY_WINDOW = 2048;
/** Frames per key epoch: both directions rekey every this many frames. */
export const REKEY_INTERVAL = 65536;
/** A frame further ahead than this many epochs is refused (bounds the rekey work it costs). */
export const MAX_EPOCH_SKIP = 4;

/** Frame types. */
export const FRAME_DATA = 1;
/** Authenticated close: distinguishes a clean end from a truncated stream. */
export const FRAME_CLOSE = 2;
/** The responder's trust decision accepted the initiator (see secure_channel.ts). */
export const FRAME_READY = 3;
/** Several application messages, each length-prefixed, in one frame. */
export const FRAME_BATCH = 4;
/** Size of the length before each message of a batch frame. */
export const BATCH_LENGTH_LEN = 2;

/** Why a session ended. */
export type SessionEndReason =
  | "closed"
  | "peer-closed"
  | "authentication-failed"
  | "malformed-frame"
  | "nonce-exhausted";

/** The session has ended; `reason` says why. No frame can be sealed or opened any more. */
export class SessionClosedError extends Error {
  override readonly name = "SessionClosedError";
  /** Why the session ended. */
  readonly reason: SessionEndReason;
  constructor(reason: SessionEndReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

/** What opening a frame gave. */
export type OpenResult =
  | { readonly kind: "data"; readonly payload: Uint8Array; readonly nonce: bigint }
  | { readonly kind: "batch"; readonly payloads: readonly Uint8Array[]; readonly nonce: bigint }
  | { readonly kind: "close" }
  | { readonly kind: "ready" }
  | { readonly kind: "dropped"; readonly why: "duplicate" | "too-old" };

/** Options of a TransportSession. */
export interface TransportSessionOptions {
  /** Frames per key epoch; both sides must agree. Default REKEY_INTERVAL. */
  readonly rekeyInterval?: number;
  /** Replay window in frames; must not exceed rekeyInterval. Default REPLAY_WINDOW. */
  readonly replayWindow?: number;
  /**
   * Test seam: start both directions' counters here (e.g. near 2^64 to test exhaustion); both
   * ends of a test pass the same value. Never reachable from configuration.
   */
  readonly startNonceForTesting?: bigint;
}

/**
 * Seals outgoing and opens incoming frames of one channel. Pure: no I/O, no timers.
 *
 * @example
 * ```ts
 * const a = new TransportSession(initiatorHandshake.split());
 * const b = new TransportSession(responderHandshake.split());
 * const r = b.open(a.seal(new TextEncoder().encode("hi")));
 * ```
 */
export class TransportSession {
  readonly #interval: bigint;
  readonly #window: bigint;
  #send: CipherState | undefined;
  #sendEpoch = 0n;
  #receiveCurrent: CipherState | undefined;
  #receivePrevious: CipherState | undefined;
  #receiveEpoch = 0n;
  #highest = -1n;
  #bitmap: Uint32Array;
  #ended: SessionClosedError | undefined;
  /** Where sealBatch joins its messages before sealing them; all zeros between uses. */
  #batchBuffer = new Uint8Array(0);

  /**
   * @param ciphers the oriented CipherStates from HandshakeState.split()
   * @throws RangeError when replayWindow is not in [32, rekeyInterval] or not a multiple of 32
   */
  constructor(ciphers: TransportCipherStates, options: TransportSessionOptions = {}) {
    const interval = options.rekeyInterval ?? REKEY_INTERVAL;
    const window = options.replayWindow ?? REPLAY_WINDOW;
    if (!Number.isSafeInteger(interval) || interval < 1) {
      throw new RangeError(`rekeyInterval must be a positive integer, got ${interval}`);
    }
    if (window < 32 || window % 32 !== 0 || window > interval) {
      throw new RangeError(
        `replayWindow must be a multiple of 32 in [32, rekeyInterval], got ${window}`,
      );
    }
    this.#interval = BigInt(interval);
    this.#window = BigInt(window);
    this.#bitmap = new Uint32Array(window / 32);
    this.#send = ciphers.send;
    this.#receiveCurrent = ciphers.receive;
    const start = options.startNonceForTesting;
    if (start !== undefined) {
      // Both ends of a test pass the same value: they behave as if `start` frames had already
      // gone each way, in epoch start / rekeyInterval (the keys themselves are not re-derived).
      this.#send.setNonce(start);
      this.#sendEpoch = this.#receiveEpoch = start / this.#interval;
      this.#highest = start - 1n;
    }
  }

  /** True once the session has ended. */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /** The error the session ended with, if it has. */
  get endError(): SessionClosedError | undefined {
    return this.#ended;
  }

  /** The next nonce this side will send with. */
  get sendNonce(): bigint {
    return this.#send?.nonce ?? 0n;
  }

  /**
   * A data frame carrying `payload`: written at the start of `into` when that is large enough
   * (a view of it is returned), else in a new buffer.
   *
   * @throws RangeError when payload exceeds MAX_PAYLOAD_LEN (the session goes on)
   * @throws SessionClosedError when the session has ended or the nonce is exhausted (it ends)
   */
  seal(payload: Uint8Array, into?: Uint8Array): Uint8Array {
    if (payload.length > MAX_PAYLOAD_LEN) {
      throw new RangeError(`payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD_LEN}`);
    }
    return this.#seal(FRAME_DATA, payload, into);
  }

  /**
   * One batch frame carrying every message of `payloads`, in order, for one AEAD call; into
   * `into` as {@linkcode TransportSession.seal} does.
   *
   * @throws RangeError when the messages and their lengths exceed MAX_PAYLOAD_LEN together,
   *   or there are none (the session goes on)
   * @throws SessionClosedError when the session has ended or the nonce is exhausted (it ends)
   */
  sealBatch(payloads: readonly Uint8Array[], into?: Uint8Array): Uint8Array {
    let size = 0;
    for (const payload of payloads) size += BATCH_LENGTH_LEN + payload.length;
    if (payloads.length === 0 || size > MAX_PAYLOAD_LEN) {
      throw new RangeError(
        `a batch of ${payloads.length} messages takes ${size} bytes; it needs 1 to ` +
          `${MAX_PAYLOAD_LEN}`,
      );
    }
    // The plaintext is joined in a buffer kept for this (zeroed after each use): a fresh one
    // would cost about a microsecond in Deno, once per batch.
    if (this.#batchBuffer.length < size) {
      this.#batchBuffer = new Uint8Array(Math.max(size, this.#batchBuffer.length * 2));
    }
    const plaintext = this.#batchBuffer.subarray(0, size);
    let at = 0;
    for (const payload of payloads) {
      plaintext[at] = payload.length >>> 8;
      plaintext[at + 1] = payload.length & 0xff;
      plaintext.set(payload, at + BATCH_LENGTH_LEN);
      at += BATCH_LENGTH_LEN + payload.length;
    }
    try {
      return this.#seal(FRAME_BATCH, plaintext, into);
    } finally {
      plaintext.fill(0);
    }
  }

  /**
   * An authenticated close frame; the session ends locally once it is sealed.
   *
   * @throws SessionClosedError when the session had already ended
   */
  sealClose(): Uint8Array {
    const frame = this.#seal(FRAME_CLOSE, new Uint8Array(0));
    this.end("closed", "the session was closed");
    return frame;
  }

  /**
   * A ready frame: tells the initiator that the responder trusts it.
   *
   * @throws SessionClosedError when the session has ended
   */
  sealReady(): Uint8Array {
    return this.#seal(FRAME_READY, new Uint8Array(0));
  }

  /**
   * Opens a frame from the peer.
   *
   * @returns the payload, a close, or "dropped" for a duplicate or too-old frame
   * @throws SessionClosedError when the frame is malformed or fails authentication (the
   *   session ends), or when it had already ended
   */
  open(frame: Uint8Array): OpenResult {
    this.#assertOpen();
    if (frame.length < FRAME_HEADER_LEN + TAGLEN) {
      this.#fail("malformed-frame", `frame of ${frame.length} bytes is truncated`);
    }
    if (frame.length > MAX_FRAME_LEN) {
      this.#fail("malformed-frame", `frame of ${frame.length} bytes exceeds ${MAX_FRAME_LEN}`);
    }
    const type = frame[0];
    if (
      type !== FRAME_DATA && type !== FRAME_CLOSE && type !== FRAME_READY && type !== FRAME_BATCH
    ) {
      this.#fail("malformed-frame", `unknown frame type ${type}`);
    }
    const view = new DataView(frame.buffer, frame.byteOffset, FRAME_HEADER_LEN);
    const n = view.getBigUint64(1);
    if (n === MAX_NONCE) this.#fail("malformed-frame", "frame uses the reserved nonce 2^64-1");
    // Cheap replay checks first; the bitmap is updated only after authentication succeeds.
    if (this.#highest >= 0n && n + this.#window <= this.#highest) {
      return { kind: "dropped", why: "too-old" };
    }
    if (n <= this.#highest && this.#seen(n)) return { kind: "dropped", why: "duplicate" };

    const cipher = this.#receiveCipherFor(n / this.#interval);
    let payload: Uint8Array;
    try {
      cipher.setNonce(n);
      payload = cipher.decryptWithAd(
        frame.subarray(0, FRAME_HEADER_LEN),
        frame.subarray(FRAME_HEADER_LEN),
      );
    } catch (cause) {
      this.#fail("authentication-failed", "a frame failed authentication", cause);
    }
    this.#markSeen(n);
    if (type === FRAME_CLOSE) {
      this.end("peer-closed", "the peer closed the session");
      return { kind: "close" };
    }
    if (type === FRAME_READY) return { kind: "ready" };
    if (type === FRAME_BATCH) {
      return { kind: "batch", payloads: this.#splitBatch(payload), nonce: n };
    }
    return { kind: "data", payload, nonce: n };
  }

  /** Ends the session (idempotent) and zeroes every key. */
  end(reason: SessionEndReason = "closed", message = "the session was closed"): void {
    if (this.#ended) return;
    this.#ended = new SessionClosedError(reason, message);
    this.#send?.destroy();
    this.#receiveCurrent?.destroy();
    this.#receivePrevious?.destroy();
    this.#send = this.#receiveCurrent = this.#receivePrevious = undefined;
    this.#batchBuffer = new Uint8Array(0);
  }

  #seal(type: number, payload: Uint8Array, into?: Uint8Array): Uint8Array {
    this.#assertOpen();
    const send = this.#send!;
    const n = send.nonce;
    // Noise §5.1 reserves 2^64-1; the session ends rather than ever reuse or wrap a nonce.
    if (n >= MAX_NONCE) {
      this.#fail("nonce-exhausted", "the 64-bit nonce counter is exhausted; reconnect");
    }
    const epoch = n / this.#interval;
    if (epoch !== this.#sendEpoch) {
      send.rekey();
      this.#sendEpoch = epoch;
    }
    // The header is written straight into the frame and used as the AD from there: a fresh
    // ArrayBuffer costs about a microsecond in Deno, and this runs once per message.
    const length = FRAME_HEADER_LEN + payload.length + TAGLEN;
    const frame = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
    frame[0] = type;
    new DataView(frame.buffer, frame.byteOffset).setBigUint64(1, n);
    // The ciphertext goes straight into the frame, after the header.
    send.encryptWithAd(
      frame.subarray(0, FRAME_HEADER_LEN),
      payload,
      frame.subarray(FRAME_HEADER_LEN),
    );
    return frame;
  }

  /** The messages of an authenticated batch payload (views into it); strict. */
  #splitBatch(payload: Uint8Array): Uint8Array[] {
    const messages: Uint8Array[] = [];
    let at = 0;
    while (at < payload.length) {
      if (payload.length - at < BATCH_LENGTH_LEN) {
        this.#fail("malformed-frame", "a batch frame ends inside a message length");
      }
      const length = (payload[at]! << 8) | payload[at + 1]!;
      const start = at + BATCH_LENGTH_LEN;
      if (length > payload.length - start) {
        this.#fail("malformed-frame", "a batch frame's message runs past its end");
      }
      messages.push(payload.subarray(start, start + length));
      at = start + length;
    }
    if (messages.length === 0) this.#fail("malformed-frame", "a batch frame carries no message");
    return messages;
  }

  /** The CipherState for an epoch, deriving forward keys as needed (bounded). */
  #receiveCipherFor(epoch: bigint): CipherState {
    if (epoch === this.#receiveEpoch) return this.#receiveCurrent!;
    if (epoch + 1n === this.#receiveEpoch && this.#receivePrevious) return this.#receivePrevious;
    if (epoch < this.#receiveEpoch) {
      // Older than the previous epoch means older than the window (replayWindow <= interval).
      this.#fail("malformed-frame", "frame belongs to a retired key epoch");
    }
    if (epoch - this.#receiveEpoch > BigInt(MAX_EPOCH_SKIP)) {
      this.#fail("malformed-frame", `frame is ${epoch - this.#receiveEpoch} key epochs ahead`);
    }
    // Derive forward on copies: only the frame's successful authentication (checked by the
    // caller, which ends the session otherwise) makes them the current keys.
    let previous = this.#receiveCurrent!;
    let current = previous.clone();
    current.rekey();
    for (let e = this.#receiveEpoch + 1n; e < epoch; e++) {
      previous.destroy();
      previous = current;
      current = current.clone();
      current.rekey();
    }
    if (previous !== this.#receiveCurrent) this.#receiveCurrent?.destroy();
    this.#receivePrevious?.destroy();
    this.#receivePrevious = epoch - this.#receiveEpoch === 1n ? this.#receiveCurrent : previous;
    this.#receiveCurrent = current;
    this.#receiveEpoch = epoch;
    return current;
  }

  #bit(n: bigint): [number, number] {
    const slot = Number(n % this.#window);
    return [slot >>> 5, 1 << (slot & 31)];
  }

  #seen(n: bigint): boolean {
    const [word, mask] = this.#bit(n);
    return (this.#bitmap[word]! & mask) !== 0;
  }

  #markSeen(n: bigint): void {
    if (n > this.#highest) {
      // Slide the window: clear the slots of nonces that fall out of it.
      const advance = n - this.#highest;
      if (advance >= this.#window) this.#bitmap.fill(0);
      else {
        for (let m = this.#highest + 1n; m <= n; m++) {
          const [word, mask] = this.#bit(m);
          this.#bitmap[word]! &= ~mask;
        }
      }
      this.#highest = n;
    }
    const [word, mask] = this.#bit(n);
    this.#bitmap[word]! |= mask;
  }

  #assertOpen(): void {
    if (this.#ended) throw this.#ended;
  }

  #fail(reason: SessionEndReason, message: string, cause?: unknown): never {
    this.end(reason, message);
    throw new SessionClosedError(reason, message, cause === undefined ? undefined : { cause });
  }
}
