/**
 * SecureChannel: a mutually authenticated, end-to-end encrypted channel between two Stratos
 * nodes over any MessageTransport (a relay link, TCP, memory).
 *
 * Handshake: Noise_XX_25519_ChaChaPoly_SHA256 with prologue "stratos-channel-v1". Each side's
 * Noise static key is bound to its Ed25519 identity by a signature carried in the encrypted
 * handshake payloads (XX messages 2 and 3), in this layout:
 *
 * ```
 * offset  size  field
 * 0       1     version = 1
 * 1       1     flags: bit 0 = a ticket presentation follows (initiator only)
 * 2       32    Ed25519 identity public key
 * 34      64    Ed25519 signature of BINDING_CONTEXT || the sender's Noise static public key
 * 98      48    ticket presentation: ticket id || ticket secret (only with flag bit 0)
 * ```
 *
 * Message 1 carries an empty payload. Trust (no application byte flows before it):
 * - the initiator checks the responder after message 2. When it enrolls with a ticket, the
 *   responder's identifier must equal the one the ticket names, or it stops before message 3,
 *   so a responder put in the middle never sees the ticket; otherwise the responder must be
 *   trusted (allowlisted or pinned).
 * - the responder checks the initiator after message 3: a presented ticket is redeemed (single
 *   use, expiring, constant-time), else the initiator must be trusted. It answers with an
 *   encrypted READY frame, or an encrypted CLOSE and hangs up.
 * - on READY after a ticket, the initiator pins the responder.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { concatBytes, type MessageTransport } from "../wire/mod.ts";
import { defaultBackend } from "./backends.ts";
import {
  type CryptoBackend,
  type KeyPair,
  SIGNATURE_LEN,
  SIGNATURE_PUBLIC_KEY_LEN,
} from "./crypto_backend.ts";
import { HandshakeError, HandshakeState } from "./handshake_state.ts";
import { identifierOf, type Identity, verifyIdentitySignature } from "./identity.ts";
import { parseTicket, type Ticket, TICKET_PRESENTATION_LEN, ticketPresentation } from "./ticket.ts";
import type { TrustPolicy } from "./trust_policy.ts";
import {
  BATCH_LENGTH_LEN,
  MAX_FRAME_LEN,
  MAX_PAYLOAD_LEN,
  SessionClosedError,
  TransportSession,
  type TransportSessionOptions,
} from "./transport_session.ts";

/** The Noise protocol every Stratos channel runs. */
export const CHANNEL_PROTOCOL = "Noise_XX_25519_ChaChaPoly_SHA256";
/** Prologue both sides mix in: a different version cannot complete a handshake. */
export const CHANNEL_PROLOGUE: Uint8Array = new TextEncoder().encode("stratos-channel-v1");
/** Domain separation for the identity signature over the Noise static key. */
export const BINDING_CONTEXT: Uint8Array = new TextEncoder().encode(
  "stratos identity binds noise static key v1:",
);
/** Default time a handshake may take before the transport is closed. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const PAYLOAD_VERSION = 1;
const FLAG_TICKET = 1;
const PROOF_LEN = 2 + SIGNATURE_PUBLIC_KEY_LEN + SIGNATURE_LEN;
const EMPTY = new Uint8Array(0);
/**
 * Messages up to this size sent in the same turn share batch frames; a larger one goes in a
 * data frame of its own (batching it would save little and cost a copy).
 */
export const MAX_BATCHED_MESSAGE_LEN = 4096;
/**
 * Once this many bytes wait to be sealed, they are sealed and handed to the transport at once,
 * not at the end of the turn: a sender that finds its data ready in one turn (a large body read
 * from a fast client) would otherwise seal megabytes before writing the first byte, and every
 * stage after it would wait for the whole lump (measured on a 100 MiB upload: 3 MiB sealed in
 * 4-8 ms, then written, then relayed, then opened, one after the other).
 */
export const EAGER_FLUSH_BYTES = 128 * 1024;

/** A peer was authenticated but is not trusted (or trust could not be established). */
export class TrustError extends Error {
  override readonly name = "TrustError";
  /** The peer's identifier, when it was learnt. */
  readonly peer: string | undefined;
  constructor(message: string, peer?: string, options?: ErrorOptions) {
    super(message, options);
    this.peer = peer;
  }
}

/** Options of SecureChannel.initiate and SecureChannel.respond. */
export interface SecureChannelOptions {
  /** This node's identity. */
  readonly identity: Identity;
  /** This node's trust decisions. */
  readonly trust: TrustPolicy;
  /** Crypto implementation; default `defaultBackend()`. */
  readonly backend?: CryptoBackend;
  /** Initiator only: enroll with this ticket (text form or parsed) from the responder. */
  readonly ticket?: string | Ticket;
  /** Time limit for the whole handshake, default DEFAULT_HANDSHAKE_TIMEOUT_MS. */
  readonly handshakeTimeoutMs?: number;
  /** Replay window, rekey interval, and test seams of the transport phase. */
  readonly session?: TransportSessionOptions;
}

interface StaticCredentials {
  readonly keyPair: KeyPair;
  readonly binding: Uint8Array;
}

// One Noise static key per identity and backend for the life of the process, bound once by a
// signature: the handshake then costs no signing.
const credentialCache = new WeakMap<Identity, Map<CryptoBackend, StaticCredentials>>();

function credentialsFor(identity: Identity, backend: CryptoBackend): StaticCredentials {
  let byBackend = credentialCache.get(identity);
  if (!byBackend) credentialCache.set(identity, byBackend = new Map());
  let credentials = byBackend.get(backend);
  if (!credentials) {
    const keyPair = backend.dh.generateKeyPair();
    const binding = identity.sign(concatBytes([BINDING_CONTEXT, keyPair.publicKey]));
    credentials = { keyPair, binding };
    byBackend.set(backend, credentials);
  }
  return credentials;
}

function encodeProof(
  identity: Identity,
  credentials: StaticCredentials,
  presentation?: Uint8Array,
): Uint8Array {
  const header = Uint8Array.of(PAYLOAD_VERSION, presentation ? FLAG_TICKET : 0);
  return concatBytes([header, identity.publicKey, credentials.binding, presentation ?? EMPTY]);
}

/** Checks a proof payload against the Noise static key; returns the sender's identifier. */
function verifyProof(
  payload: Uint8Array,
  remoteStatic: Uint8Array,
  backend: CryptoBackend,
  allowTicket: boolean,
): { identifier: string; presentation: Uint8Array | undefined } {
  const hasTicket = payload[1] === FLAG_TICKET;
  const expected = PROOF_LEN + (hasTicket ? TICKET_PRESENTATION_LEN : 0);
  if (
    payload.length !== expected || payload[0] !== PAYLOAD_VERSION ||
    (payload[1] !== 0 && payload[1] !== FLAG_TICKET) || (hasTicket && !allowTicket)
  ) {
    throw new Error("the identity payload is missing or malformed");
  }
  const identityKey = payload.subarray(2, 2 + SIGNATURE_PUBLIC_KEY_LEN);
  const signature = payload.subarray(2 + SIGNATURE_PUBLIC_KEY_LEN, PROOF_LEN);
  if (
    !verifyIdentitySignature(identityKey, concatBytes([BINDING_CONTEXT, remoteStatic]), signature, {
      backend,
    })
  ) {
    throw new Error("the identity signature over the Noise static key is invalid");
  }
  return {
    identifier: identifierOf(identityKey, { backend }),
    presentation: hasTicket ? payload.slice(PROOF_LEN) : undefined,
  };
}

/**
 * An established channel. Create one with `SecureChannel.initiate` or `SecureChannel.respond`.
 *
 * @example
 * ```ts
 * const channel = await SecureChannel.initiate(transport, { identity, trust, ticket });
 * await channel.send(new TextEncoder().encode("hello"));
 * const reply = await channel.receive();
 * await channel.close();
 * ```
 */
export class SecureChannel {
  readonly #transport: MessageTransport;
  readonly #session: TransportSession;
  readonly #peer: string;
  readonly #handshakeHash: Uint8Array;
  readonly #enrolled: boolean;
  #dropped = 0;
  /**
   * Messages sent this turn and not yet sealed, their bytes in all, and the promise their send()
   * calls share.
   */
  #outbox: Uint8Array[] = [];
  #outboxBytes = 0;
  #outboxSent: PromiseWithResolvers<void> | undefined;
  /** Where frames are sealed when the transport copies them (see #flush). */
  #frameBuffer: Uint8Array | undefined;
  /** The rest of a batch frame's messages, delivered before the next frame is read. */
  #inbox: readonly Uint8Array[] = [];
  #inboxAt = 0;
  readonly #flushNow = () => this.#flush();

  private constructor(
    transport: MessageTransport,
    session: TransportSession,
    peer: string,
    handshakeHash: Uint8Array,
    enrolled: boolean,
  ) {
    this.#transport = transport;
    this.#session = session;
    this.#peer = peer;
    this.#handshakeHash = handshakeHash;
    this.#enrolled = enrolled;
  }

  /**
   * Runs the initiator's side of the handshake (the sat's, when it dials a proxy).
   *
   * @throws HandshakeError when the handshake fails (bad message, timeout, peer hung up)
   * @throws TrustError when the responder is not trusted, does not match the ticket, or
   *   refused us; the transport is closed
   */
  static async initiate(
    transport: MessageTransport,
    options: SecureChannelOptions,
  ): Promise<SecureChannel> {
    const backend = options.backend ?? defaultBackend();
    const ticket = typeof options.ticket === "string"
      ? parseTicket(options.ticket)
      : options.ticket;
    const credentials = credentialsFor(options.identity, backend);
    return await withTimeout(transport, options.handshakeTimeoutMs, async (next) => {
      const hs = new HandshakeState(CHANNEL_PROTOCOL, true, {
        backend,
        prologue: CHANNEL_PROLOGUE,
        s: credentials.keyPair,
      });
      try {
        await transport.send(hs.writeMessage(EMPTY));
        const payload = hs.readMessage(await next(hs));
        const { identifier } = guard(
          hs,
          () => verifyProof(payload, hs.remoteStaticKey!, backend, false),
        );
        if (ticket && ticket.responder !== identifier) {
          throw new TrustError(
            `the peer is ${identifier}, but the enrollment ticket was issued by ` +
              `${ticket.responder}: refusing before revealing the ticket (a relay may be ` +
              `redirecting this connection)`,
            identifier,
          );
        }
        if (!ticket && !options.trust.isTrusted(identifier)) {
          throw new TrustError(
            `the peer ${identifier} is not trusted: enroll with a ticket it issued, or add ` +
              `its identifier to the allowlist`,
            identifier,
          );
        }
        const presentation = ticket ? ticketPresentation(ticket) : undefined;
        await transport.send(
          hs.writeMessage(encodeProof(options.identity, credentials, presentation)),
        );
        const session = new TransportSession(hs.split(), options.session);
        const answer = await transport.receive();
        const opened = answer === undefined ? undefined : session.open(answer);
        if (opened?.kind !== "ready") {
          session.end();
          throw new TrustError(
            `the peer ${identifier} refused this node` +
              (ticket ? " (the ticket may be used or expired: ask for a fresh one)" : ""),
            identifier,
          );
        }
        if (ticket) await options.trust.pin(identifier);
        return new SecureChannel(transport, session, identifier, hs.handshakeHash(), !!ticket);
      } catch (error) {
        hs.destroy();
        transport.close();
        throw error instanceof SessionClosedError
          ? new HandshakeError(hs.messageIndex, error.message, { cause: error })
          : error;
      }
    });
  }

  /**
   * Runs the responder's side of the handshake (the proxy's, when a sat dials in).
   *
   * @throws HandshakeError when the handshake fails
   * @throws TrustError when the initiator is not trusted or its ticket is refused; the
   *   initiator gets an encrypted close and the transport is closed
   */
  static async respond(
    transport: MessageTransport,
    options: SecureChannelOptions,
  ): Promise<SecureChannel> {
    const backend = options.backend ?? defaultBackend();
    const credentials = credentialsFor(options.identity, backend);
    return await withTimeout(transport, options.handshakeTimeoutMs, async (next) => {
      const hs = new HandshakeState(CHANNEL_PROTOCOL, false, {
        backend,
        prologue: CHANNEL_PROLOGUE,
        s: credentials.keyPair,
      });
      try {
        const first = hs.readMessage(await next(hs));
        if (first.length !== 0) {
          guard(hs, () => {
            throw new Error("message 1 must carry an empty payload");
          });
        }
        await transport.send(hs.writeMessage(encodeProof(options.identity, credentials)));
        const payload = hs.readMessage(await next(hs));
        const { identifier, presentation } = guard(
          hs,
          () => verifyProof(payload, hs.remoteStaticKey!, backend, true),
        );
        const session = new TransportSession(hs.split(), options.session);
        const decision = presentation
          ? await options.trust.redeemTicket(presentation, identifier)
          : options.trust.isTrusted(identifier)
          ? { trusted: true, reason: "trusted" }
          : { trusted: false, reason: "not allowlisted, not pinned, and no ticket presented" };
        if (!decision.trusted) {
          await transport.send(session.sealClose()).catch(() => {});
          throw new TrustError(`refused ${identifier}: ${decision.reason}`, identifier);
        }
        await transport.send(session.sealReady());
        return new SecureChannel(
          transport,
          session,
          identifier,
          hs.handshakeHash(),
          presentation !== undefined,
        );
      } catch (error) {
        hs.destroy();
        transport.close();
        throw error;
      }
    });
  }

  /** The peer's identifier (`I` + 64 hex digits), authenticated and trusted. */
  get peer(): string {
    return this.#peer;
  }

  /** The Noise handshake hash: a unique name for this session, the same on both ends. */
  get handshakeHash(): Uint8Array {
    return this.#handshakeHash.slice();
  }

  /** True when this channel enrolled the peer with a ticket (which is now used up). */
  get enrolled(): boolean {
    return this.#enrolled;
  }

  /** Frames dropped as duplicates or older than the replay window. */
  get droppedFrames(): number {
    return this.#dropped;
  }

  /** True once the channel has ended (closed by either side, or failed). */
  get closed(): boolean {
    return this.#session.ended;
  }

  /**
   * Sends one message of at most MAX_PAYLOAD_LEN bytes.
   *
   * Messages are sealed at the end of the current event-loop turn (`setImmediate`, some
   * microseconds later): everything sent in that turn, e.g. the invocations of every HTTP
   * request the turn took in, one per task, goes out together, consecutive small messages
   * sharing batch frames (transport_session.ts). A burst then costs one AEAD call and one
   * transport message per batch instead of per message, which is most of the per-message CPU
   * (measured: 6 messages per frame at 32 concurrent requests, proxy CPU per request 200 →
   * 113 µs). Once {@linkcode EAGER_FLUSH_BYTES} wait, they are sealed at once instead, so that
   * a large body goes out while the rest of it is still being read. Order is kept. The channel
   * keeps a reference to `message` until it is sealed: do not modify it before the returned
   * promise settles. The promise is shared by the messages sealed together.
   *
   * @throws RangeError when the message is too large (the channel goes on)
   * @throws SessionClosedError when the channel has ended
   */
  send(message: Uint8Array): Promise<void> {
    if (message.length > MAX_PAYLOAD_LEN) {
      return Promise.reject(
        new RangeError(`payload of ${message.length} bytes exceeds ${MAX_PAYLOAD_LEN}`),
      );
    }
    if (this.#session.ended) return Promise.reject(this.#session.endError);
    this.#outbox.push(message);
    this.#outboxBytes += message.length;
    let sent = this.#outboxSent;
    if (sent === undefined) {
      sent = this.#outboxSent = Promise.withResolvers<void>();
      setImmediate(this.#flushNow);
    }
    if (this.#outboxBytes >= EAGER_FLUSH_BYTES) this.#flush();
    return sent.promise;
  }

  /** Seals what was sent this turn, in order, and hands the frames to the transport. */
  #flush(): void {
    const sent = this.#outboxSent;
    if (sent === undefined) return; // Already flushed by close().
    const messages = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    this.#outboxSent = undefined;
    const writes: Promise<void>[] = [];
    // A transport that is done with a frame once `send` returns gets every frame sealed into
    // the same buffer: no 64 KiB allocation per frame.
    const into = this.#transport.copiesMessages
      ? (this.#frameBuffer ??= new Uint8Array(MAX_FRAME_LEN))
      : undefined;
    try {
      let group: Uint8Array[] = [];
      let groupSize = 0;
      const sealGroup = () => {
        if (group.length === 0) return;
        const frame = group.length === 1
          ? this.#session.seal(group[0]!, into)
          : this.#session.sealBatch(group, into);
        writes.push(this.#transport.send(frame));
        group = [];
        groupSize = 0;
      };
      for (const message of messages) {
        if (message.length > MAX_BATCHED_MESSAGE_LEN) {
          sealGroup();
          writes.push(this.#transport.send(this.#session.seal(message, into)));
          continue;
        }
        if (groupSize + BATCH_LENGTH_LEN + message.length > MAX_PAYLOAD_LEN) sealGroup();
        group.push(message);
        groupSize += BATCH_LENGTH_LEN + message.length;
      }
      sealGroup();
    } catch (error) {
      // Every write gets a handler, so that none of them is an unhandled rejection.
      Promise.allSettled(writes);
      sent.reject(error);
      return;
    }
    (writes.length === 1 ? writes[0]! : Promise.all(writes)).then(
      () => sent.resolve(),
      sent.reject,
    );
  }

  /**
   * The next message from the peer, or undefined once the channel is closed cleanly.
   *
   * @throws SessionClosedError when a frame is malformed or fails authentication, or the
   *   transport ended without an authenticated close (the keys are gone, the transport closed)
   */
  async receive(): Promise<Uint8Array | undefined> {
    while (true) {
      if (this.#session.ended) {
        const reason = this.#session.endError!.reason;
        if (reason === "closed" || reason === "peer-closed") return undefined;
        throw this.#session.endError;
      }
      if (this.#inboxAt < this.#inbox.length) return this.#inbox[this.#inboxAt++]!;
      const frame = await this.#transport.receive();
      if (frame === undefined) {
        this.#session.end("malformed-frame", "the transport closed without an authenticated close");
        throw this.#session.endError;
      }
      let result;
      try {
        result = this.#session.open(frame);
      } catch (error) {
        this.#transport.close();
        throw error;
      }
      if (result.kind === "data") return result.payload;
      if (result.kind === "batch") {
        this.#inbox = result.payloads;
        this.#inboxAt = 1;
        return result.payloads[0]!;
      }
      if (result.kind === "dropped") this.#dropped++;
      if (result.kind === "close") {
        this.#transport.close();
        return undefined;
      }
      // "ready" after the handshake is ignored: it is only meaningful as the first frame.
    }
  }

  /** Sends an authenticated close, drops the keys and closes the transport. Idempotent. */
  async close(): Promise<void> {
    // What was sent before close() goes out before the close frame; what was received and not
    // read is dropped with the keys.
    this.#flush();
    this.#inbox = [];
    this.#inboxAt = 0;
    if (!this.#session.ended) {
      await this.#transport.send(this.#session.sealClose()).catch(() => {});
    }
    this.#session.end();
    this.#transport.close();
  }
}

function guard<T>(hs: HandshakeState, step: () => T): T {
  try {
    return step();
  } catch (cause) {
    const stage = hs.messageIndex - 1;
    throw new HandshakeError(stage, (cause as Error).message, { cause });
  }
}

async function withTimeout<T>(
  transport: MessageTransport,
  timeoutMs: number | undefined,
  run: (next: (hs: HandshakeState) => Promise<Uint8Array>) => Promise<T>,
): Promise<T> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    transport.close();
  }, timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS);
  const next = async (hs: HandshakeState) => {
    const message = await transport.receive();
    if (message === undefined) {
      throw new HandshakeError(
        hs.messageIndex,
        timedOut ? "timed out" : "the peer closed the connection",
      );
    }
    return message;
  };
  try {
    return await run(next);
  } finally {
    clearTimeout(timer);
  }
}
