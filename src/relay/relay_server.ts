/**
 * The relay: a public TCP service that proxies and sats dial out to. A node registers a
 * forwarding address (`FWD_` + 16 hex digits) with its identity key; other nodes open links
 * to that address; the relay moves each link's DATA between the two connections without
 * reading it (it is Noise ciphertext). The wire protocol is written down in
 * src/wire/relay_protocol.ts.
 *
 * Everything a node can make the relay hold is bounded by {@link RelayLimits}: connections,
 * links per connection, bytes in flight per link (credit), bytes queued per connection,
 * registrations, frame size, and silence (heartbeats). A node that breaks the protocol loses
 * its own connection, with a log line; everyone else is served on.
 *
 * Memory per connection stays below `maxQueuedBytes` + one frame (what waits to be written to
 * it) + a 64 KiB read buffer + `maxFrameLen` (a partly received frame), so the whole relay
 * stays below `maxConnections` times that. Per-link credit keeps honest traffic far below
 * `maxQueuedBytes`: a connection reaches it only by not reading what it asked for.
 *
 * @module
 */

import { identifierOf, verifyIdentitySignature } from "../channel/mod.ts";
import {
  BatchedFrameWriter,
  DATA_HEADER_LEN,
  decodeRelayMessage,
  DEFAULT_LINK_WINDOW,
  encodeRelayFrame,
  FORWARDING_ADDRESS_PREFIX,
  FrameDecoder,
  FrameError,
  INITIAL_LINK_CREDIT,
  MAX_LINK_ID,
  MAX_LINK_WINDOW,
  MAX_RELAY_MESSAGE_LEN,
  readU32,
  registrationMessage,
  RELAY_CHALLENGE_LEN,
  RELAY_LINK_ID_FLAG,
  type RelayLog,
  type RelayLogLevel,
  type RelayMessage,
  RelayMessageType,
  writeU32,
} from "../wire/mod.ts";
import { type Registration, RegistrationStore } from "./_registrations.ts";

/** The relay's port when none is given. */
export const DEFAULT_RELAY_PORT = 4000;
/** Smallest `maxFrameLen` accepted. Below DATA_HEADER_LEN + 65544 secure-channel frames fail. */
export const MIN_RELAY_FRAME_LEN = 1024;

/**
 * Read buffer of a busy connection. 256 KiB: a stream through the relay moves in fewer, larger
 * reads, and with fewer event-loop turns per byte in the relay and the nodes a 100 MiB upload
 * ran 15 to 35% faster than with 64 KiB (1 MiB was slower again: `deno task bench:stream`).
 */
const READ_CHUNK_LEN = 256 * 1024;
/**
 * Read buffer of a quiet connection: an idle sat costs this, not READ_CHUNK_LEN. A read that
 * fills it switches the connection to READ_CHUNK_LEN; eight short reads in a row switch back.
 */
const SMALL_READ_LEN = 2 * 1024;
const ADDRESS_RANDOM_BYTES = 8;
const ACCEPT_RETRY_MS = 100;

/** What the relay bounds. Every field has a default in {@link DEFAULT_RELAY_LIMITS}. */
export interface RelayLimits {
  /** Largest frame body accepted from a node; a bigger one closes its connection. */
  readonly maxFrameLen: number;
  /** Connections served at once; more are closed on accept. */
  readonly maxConnections: number;
  /** Connections from one IP address at once; more from it are closed on accept. */
  readonly maxConnectionsPerIp: number;
  /** Links open at once on one connection (as opener and listener together). */
  readonly maxLinksPerConnection: number;
  /**
   * Most DATA bytes in flight per link and direction: CREDIT that grants more is a protocol
   * violation. Clients must use a window no larger (`connectRelay`'s `linkWindow`).
   */
  readonly linkWindow: number;
  /** Bytes queued for a node that is not reading; past this its connection is closed. */
  readonly maxQueuedBytes: number;
  /** The relay sends PING to every connection this often. */
  readonly heartbeatIntervalMs: number;
  /** A connection on which nothing arrived for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Addresses recorded in the state file at most; more registrations are refused. */
  readonly maxRegistrations: number;
}

/** The limits used when {@link RelayServerOptions.limits} leaves a field out. */
export const DEFAULT_RELAY_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxFrameLen: MAX_RELAY_MESSAGE_LEN,
  maxConnections: 16_384,
  maxConnectionsPerIp: 1024,
  maxLinksPerConnection: 4096,
  linkWindow: DEFAULT_LINK_WINDOW,
  maxQueuedBytes: 32 * 1024 * 1024,
  heartbeatIntervalMs: 15_000,
  idleTimeoutMs: 45_000,
  maxRegistrations: 100_000,
});

/** Options of {@link RelayServer.start}. */
export interface RelayServerOptions {
  /** Interface to listen on; default "0.0.0.0" (the relay is meant to be public). */
  readonly hostname?: string;
  /** TCP port; default {@link DEFAULT_RELAY_PORT}; 0 picks a free one (see `addr`). */
  readonly port?: number;
  /** Folder for `registrations.json` (created 0700 if absent), e.g. `stateDirPath("relay")`. */
  readonly stateDir: string;
  /** Overrides of {@link DEFAULT_RELAY_LIMITS}. */
  readonly limits?: Partial<RelayLimits>;
  /** Where events go; default nowhere. */
  readonly log?: RelayLog;
  /** Milliseconds since the epoch; default `Date.now`. */
  readonly clock?: () => number;
}

/** A snapshot of what the relay holds, for metrics and tests. */
export interface RelayStats {
  /** Open node connections. */
  readonly connections: number;
  /** Open links. */
  readonly links: number;
  /** Connections currently listening on an address. */
  readonly listeners: number;
  /** Addresses recorded in the state file. */
  readonly registrations: number;
  /** Bytes queued to be written to nodes, over all connections. */
  readonly queuedBytes: number;
  /** DATA bytes forwarded since the start (frame bodies, link headers included). */
  readonly bytesForwarded: number;
  /** Connections refused on accept since the start, by reason. */
  readonly refused: Readonly<Record<"connections" | "perIp", number>>;
}

/** A node broke the protocol in a way the codec cannot see (credit, link ids, direction). */
class ProtocolViolation extends Error {
  override readonly name = "ProtocolViolation";
}

/** One end of a link: the connection it is on, its id there, and what it may still send. */
class LinkEnd {
  other: LinkEnd = this;
  constructor(readonly peer: Peer, readonly id: number, public credit: number) {}
}

/** One node connection. */
class Peer {
  readonly links = new Map<number, LinkEnd>();
  readonly challenge: Uint8Array = crypto.getRandomValues(new Uint8Array(RELAY_CHALLENGE_LEN));
  readonly remote: string;
  readonly writer: BatchedFrameWriter;
  readonly decoder: FrameDecoder;
  lastReceived: number;
  address: string | undefined;
  identifier: string | undefined;
  nextLinkId = RELAY_LINK_ID_FLAG;
  closed = false;

  constructor(
    readonly id: number,
    readonly conn: Deno.TcpConn,
    init: {
      readonly now: number;
      readonly maxFrameLen: number;
      readonly onWriteError: (error: Error) => void;
    },
  ) {
    this.remote = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
    this.lastReceived = init.now;
    this.decoder = new FrameDecoder(init.maxFrameLen);
    this.writer = new BatchedFrameWriter(conn, { onError: init.onWriteError });
  }
}

const PING_FRAME = encodeRelayFrame({ type: "ping" });
const PONG_FRAME = encodeRelayFrame({ type: "pong" });

/**
 * The relay service. Start it with {@link RelayServer.start}; stop it with
 * {@link RelayServer.close}.
 *
 * @example
 * ```ts
 * const relay = await RelayServer.start({ hostname: "127.0.0.1", port: 0, stateDir });
 * console.log(`relay on port ${relay.addr.port}`);
 * await relay.close();
 * ```
 */
export class RelayServer {
  readonly #listener: Deno.TcpListener;
  readonly #store: RegistrationStore;
  readonly #limits: RelayLimits;
  readonly #log: RelayLog;
  readonly #clock: () => number;
  readonly #peers = new Set<Peer>();
  readonly #holders = new Map<string, Peer>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #acceptTask: Promise<void>;
  readonly #sweepTimer: ReturnType<typeof setInterval>;
  #pause: { timer: ReturnType<typeof setTimeout>; resolve: () => void } | undefined;
  #closing: Promise<void> | undefined;
  #nextPeerId = 1;
  #linkCount = 0;
  /** Open connections per remote IP address. */
  readonly #perIp = new Map<string, number>();
  #bytesForwarded = 0;
  readonly #refused = { connections: 0, perIp: 0 };

  private constructor(
    listener: Deno.TcpListener,
    store: RegistrationStore,
    limits: RelayLimits,
    log: RelayLog,
    clock: () => number,
  ) {
    this.#listener = listener;
    this.#store = store;
    this.#limits = limits;
    this.#log = log;
    this.#clock = clock;
    this.#sweepTimer = setInterval(() => this.#sweep(), limits.heartbeatIntervalMs);
    this.#acceptTask = this.#acceptLoop();
  }

  /**
   * Loads the registrations and starts listening.
   *
   * @param options Where to listen, the state folder, limits, log and clock.
   * @returns The running relay.
   * @throws {TypeError} when an option has the wrong type or `limits` has an unknown key.
   * @throws {RangeError} when a number is out of range (the message names it and the range).
   * @throws {StateFileError} / {SyntaxError} when `registrations.json` is unsafe or malformed.
   * @throws `Deno.errors.AddrInUse` and other `Deno` errors from listening.
   * @example
   * ```ts
   * const relay = await RelayServer.start({
   *   port: 4000,
   *   stateDir: stateDirPath("relay"),
   *   log: (level, message, fields) => logger[level](message, fields),
   * });
   * ```
   */
  static async start(options: RelayServerOptions): Promise<RelayServer> {
    if (typeof options?.stateDir !== "string" || options.stateDir === "") {
      throw new TypeError("RelayServer.start: stateDir must be a non-empty folder path");
    }
    const hostname = options.hostname ?? "0.0.0.0";
    const port = options.port ?? DEFAULT_RELAY_PORT;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(`RelayServer.start: port must be 0 to 65535, got ${port}`);
    }
    const limits = resolveLimits(options.limits);
    const log = options.log ?? (() => {});
    const store = await RegistrationStore.open(options.stateDir);
    const listener = Deno.listen({ hostname, port, transport: "tcp" });
    const relay = new RelayServer(listener, store, limits, log, options.clock ?? Date.now);
    log("info", "relay listening", {
      hostname: listener.addr.hostname,
      port: listener.addr.port,
      registrations: store.size,
    });
    return relay;
  }

  /** The address the relay listens on, with the real port. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /** The limits in force (defaults applied). */
  get limits(): Readonly<RelayLimits> {
    return this.#limits;
  }

  /** What the relay holds right now. */
  stats(): RelayStats {
    let queuedBytes = 0;
    let listeners = 0;
    for (const peer of this.#peers) {
      queuedBytes += peer.writer.queuedBytes;
      if (peer.address !== undefined) listeners++;
    }
    return {
      connections: this.#peers.size,
      links: this.#linkCount,
      listeners,
      registrations: this.#store.size,
      queuedBytes,
      bytesForwarded: this.#bytesForwarded,
      refused: { ...this.#refused },
    };
  }

  /**
   * Stops listening, closes every connection (their links end) and waits until every task,
   * timer and pending state-file write is done. Idempotent.
   *
   * @returns Resolves once nothing of the relay is left running.
   * @throws Never.
   * @example
   * ```ts
   * Deno.addSignalListener("SIGTERM", () => relay.close());
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#sweepTimer);
    if (this.#pause !== undefined) {
      clearTimeout(this.#pause.timer);
      this.#pause.resolve();
    }
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#acceptTask;
    for (const peer of [...this.#peers]) this.#drop(peer);
    await Promise.all(this.#tasks);
    await this.#store.settled();
    this.#log("info", "relay stopped");
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing !== undefined || error instanceof Deno.errors.BadResource) return;
        this.#log("error", "accepting a connection failed; retrying", { error: String(error) });
        await new Promise<void>((resolve) => {
          this.#pause = { timer: setTimeout(resolve, ACCEPT_RETRY_MS), resolve };
        });
        this.#pause = undefined;
        continue;
      }
      if (this.#closing !== undefined) {
        closeQuietly(conn);
        return;
      }
      if (this.#peers.size >= this.#limits.maxConnections) {
        this.#refused.connections++;
        this.#log("warn", "refused a connection: the relay is at its connection limit", {
          remote: `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`,
          maxConnections: this.#limits.maxConnections,
        });
        closeQuietly(conn);
        continue;
      }
      const ip = conn.remoteAddr.hostname;
      const fromIp = this.#perIp.get(ip) ?? 0;
      if (fromIp >= this.#limits.maxConnectionsPerIp) {
        this.#refused.perIp++;
        this.#log("warn", "refused a connection: its address is at its connection limit", {
          remote: `${ip}:${conn.remoteAddr.port}`,
          maxConnectionsPerIp: this.#limits.maxConnectionsPerIp,
        });
        closeQuietly(conn);
        continue;
      }
      this.#perIp.set(ip, fromIp + 1);
      this.#startPeer(conn);
    }
  }

  #startPeer(conn: Deno.TcpConn): void {
    try {
      conn.setNoDelay(true);
    } catch {
      // Not fatal: only latency suffers.
    }
    const peer: Peer = new Peer(this.#nextPeerId++, conn, {
      now: this.#clock(),
      maxFrameLen: this.#limits.maxFrameLen,
      onWriteError: (error) =>
        this.#drop(peer, "debug", "writing to a connection failed", { error: String(error) }),
    });
    this.#peers.add(peer);
    this.#log("debug", "connection accepted", this.#fields(peer));
    const task = this.#serve(peer);
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #serve(peer: Peer): Promise<void> {
    let buffer = new Uint8Array(SMALL_READ_LEN);
    let shortReads = 0;
    try {
      peer.writer.writeFrame(encodeRelayFrame({ type: "challenge", challenge: peer.challenge }));
      for (;;) {
        let n: number | null;
        try {
          n = await peer.conn.read(buffer);
        } catch (error) {
          this.#drop(peer, "debug", "reading from a connection failed", { error: String(error) });
          return;
        }
        if (n === null) {
          this.#drop(peer, "debug", "connection closed by the node");
          return;
        }
        if (peer.closed) return;
        peer.lastReceived = this.#clock();
        peer.decoder.feed(buffer.subarray(0, n));
        if (n === buffer.length && buffer.length < READ_CHUNK_LEN) {
          buffer = new Uint8Array(READ_CHUNK_LEN);
        } else if (buffer.length > SMALL_READ_LEN && n < SMALL_READ_LEN) {
          if (++shortReads >= 8) [buffer, shortReads] = [new Uint8Array(SMALL_READ_LEN), 0];
        } else shortReads = 0;
        for (
          let view = peer.decoder.nextView();
          view !== undefined;
          view = peer.decoder.nextView()
        ) {
          // DATA is forwarded straight from the read buffer (the writer copies it into its batch
          // at once); other messages may be kept or awaited on, so they get their own copy.
          const body = view[0] === RelayMessageType.DATA ? view : view.slice();
          const pending = this.#onMessage(peer, body);
          if (pending !== undefined) await pending;
          if (peer.closed) return;
        }
      }
    } catch (error) {
      if (error instanceof FrameError || error instanceof ProtocolViolation) {
        this.#drop(peer, "warn", `closing a connection that broke the protocol: ${error.message}`);
      } else {
        this.#drop(peer, "error", "closing a connection after an internal error", {
          error: String((error as Error)?.stack ?? error),
        });
      }
    } finally {
      this.#drop(peer);
      await peer.writer.settled();
    }
  }

  /** Handles one message; returns a promise only when it has to wait (registration). */
  #onMessage(peer: Peer, body: Uint8Array): Promise<void> | undefined {
    // DATA is the hot path: translate the link id in place and forward the body as it is.
    if (body[0] === RelayMessageType.DATA) {
      if (body.length < DATA_HEADER_LEN) {
        throw new FrameError(`relay message truncated: DATA of ${body.length} bytes`);
      }
      const end = peer.links.get(readU32(body, 1));
      if (end === undefined) return; // A link that has just been closed.
      const size = body.length - DATA_HEADER_LEN;
      if (size > end.credit) {
        throw new ProtocolViolation(
          `DATA of ${size} bytes on link ${end.id} exceeds the ${end.credit} bytes of credit ` +
            "its peer granted",
        );
      }
      end.credit -= size;
      this.#bytesForwarded += body.length;
      const other = end.other;
      writeU32(body, 1, other.id);
      this.#sendBody(other.peer, body);
      return;
    }
    const message = decodeRelayMessage(body);
    switch (message.type) {
      case "register":
        return this.#register(peer, message);
      case "open":
        this.#open(peer, message.linkId, message.address);
        return;
      case "credit": {
        const end = peer.links.get(message.linkId);
        if (end === undefined) return;
        const other = end.other;
        other.credit += message.bytes;
        if (other.credit > this.#limits.linkWindow) {
          throw new ProtocolViolation(
            `CREDIT on link ${end.id} lets ${other.credit} bytes be in flight, more than the ` +
              `relay's link window of ${this.#limits.linkWindow}`,
          );
        }
        writeU32(body, 1, other.id);
        this.#sendBody(other.peer, body);
        return;
      }
      case "close": {
        const end = peer.links.get(message.linkId);
        if (end === undefined) return;
        const other = end.other;
        this.#unlink(end);
        writeU32(body, 1, other.id);
        this.#sendBody(other.peer, body);
        this.#log("debug", "link closed", { ...this.#fields(peer), link: end.id });
        return;
      }
      case "ping":
        this.#sendFrame(peer, PONG_FRAME);
        return;
      case "pong":
        return;
      default:
        throw new ProtocolViolation(
          `a node sent ${message.type.toUpperCase()}, which only the relay sends`,
        );
    }
  }

  async #register(
    peer: Peer,
    message: Extract<RelayMessage, { type: "register" }>,
  ): Promise<void> {
    const { publicKey, address, signature } = message;
    const refuse = (reason: string, level: RelayLogLevel, fields: Record<string, unknown> = {}) => {
      this.#log(level, `refused a registration: ${reason}`, { ...this.#fields(peer), ...fields });
      this.#sendFrame(peer, encodeRelayFrame({ type: "refused", reason }));
    };
    if (
      !verifyIdentitySignature(publicKey, registrationMessage(peer.challenge, address), signature)
    ) {
      refuse("the signature does not verify against this connection's challenge", "warn");
      return;
    }
    const identifier = identifierOf(publicKey);
    if (peer.address !== undefined) {
      if (peer.identifier === identifier && (address === "" || address === peer.address)) {
        this.#sendFrame(peer, encodeRelayFrame({ type: "registered", address: peer.address }));
      } else {
        refuse(
          `this connection already listens on ${peer.address}; open another connection to ` +
            "listen on another address",
          "info",
        );
      }
      return;
    }
    let granted = address;
    let added = false;
    const owner = address === "" ? undefined : this.#store.get(address);
    if (owner !== undefined && owner.identifier !== identifier) {
      refuse(`${address} belongs to another identity`, "warn", { address, identifier });
      return;
    }
    if (owner === undefined) {
      if (this.#store.size >= this.#limits.maxRegistrations) {
        refuse(
          `the relay already holds its maximum of ${this.#limits.maxRegistrations} addresses`,
          "warn",
        );
        return;
      }
      while (granted === "" || this.#store.get(granted) !== undefined) granted = newAddress();
      const registration: Registration = {
        identifier,
        publicKey: publicKey.toBase64(),
        since: new Date(this.#clock()).toISOString(),
      };
      this.#store.set(granted, registration);
      added = true;
      try {
        await this.#store.save();
      } catch (error) {
        if (this.#store.get(granted) === registration) this.#store.delete(granted);
        this.#log("error", "could not record a registration in the state file", {
          path: this.#store.path,
          error: String(error),
        });
        if (!peer.closed) {
          refuse("the relay could not record the registration; retry later", "warn");
        }
        return;
      }
      if (peer.closed) return;
    }
    const previous = this.#holders.get(granted);
    if (previous !== undefined && previous !== peer) {
      previous.address = undefined;
      this.#sendFrame(
        previous,
        encodeRelayFrame({
          type: "refused",
          reason: `${granted} was taken over by a newer connection of its owner`,
        }),
      );
      this.#log("info", "address taken over by a newer connection", {
        ...this.#fields(previous),
        address: granted,
        by: peer.id,
      });
    }
    this.#holders.set(granted, peer);
    peer.address = granted;
    peer.identifier = identifier;
    this.#sendFrame(peer, encodeRelayFrame({ type: "registered", address: granted }));
    this.#log("info", added ? "registered a new address" : "address reclaimed by its owner", {
      ...this.#fields(peer),
      identifier,
    });
  }

  #open(peer: Peer, linkId: number, address: string): void {
    if (peer.links.has(linkId)) {
      throw new ProtocolViolation(`OPEN reuses link id ${linkId}, which is still open`);
    }
    const max = this.#limits.maxLinksPerConnection;
    const fail = (reason: string) => {
      this.#log("debug", `could not open a link: ${reason}`, { ...this.#fields(peer), linkId });
      this.#sendFrame(peer, encodeRelayFrame({ type: "open-failed", linkId, reason }));
    };
    if (peer.links.size >= max) {
      fail(`this connection already has the relay's maximum of ${max} links open`);
      return;
    }
    const target = this.#holders.get(address);
    if (target === undefined) {
      fail(
        this.#store.get(address) === undefined
          ? `no such forwarding address: ${address}`
          : `${address} is offline: its owner is not connected to the relay`,
      );
      return;
    }
    if (target.links.size >= (target === peer ? max - 1 : max)) {
      fail(`${address} already has the relay's maximum of ${max} links open`);
      return;
    }
    const targetId = allocateLinkId(target);
    const opener = new LinkEnd(peer, linkId, INITIAL_LINK_CREDIT);
    const listener = new LinkEnd(target, targetId, INITIAL_LINK_CREDIT);
    opener.other = listener;
    listener.other = opener;
    peer.links.set(linkId, opener);
    target.links.set(targetId, listener);
    this.#linkCount++;
    this.#sendFrame(target, encodeRelayFrame({ type: "incoming", linkId: targetId }));
    this.#sendFrame(peer, encodeRelayFrame({ type: "opened", linkId }));
    this.#log("debug", "link opened", {
      ...this.#fields(peer),
      linkId,
      to: target.id,
      address,
    });
  }

  #unlink(end: LinkEnd): void {
    end.peer.links.delete(end.id);
    end.other.peer.links.delete(end.other.id);
    this.#linkCount--;
  }

  #sendFrame(peer: Peer, frame: Uint8Array): void {
    peer.writer.writeFrame(frame);
    this.#checkQueue(peer);
  }

  #sendBody(peer: Peer, body: Uint8Array): void {
    peer.writer.writeBody(body);
    this.#checkQueue(peer);
  }

  #checkQueue(peer: Peer): void {
    const queued = peer.writer.queuedBytes;
    if (queued > this.#limits.maxQueuedBytes) {
      this.#drop(peer, "warn", "closing a connection that does not read what it is sent", {
        queuedBytes: queued,
        maxQueuedBytes: this.#limits.maxQueuedBytes,
      });
    }
  }

  /** Closes a connection and every link on it (their other ends get CLOSE). Idempotent. */
  #drop(
    peer: Peer,
    level?: RelayLogLevel,
    message?: string,
    fields?: Record<string, unknown>,
  ): void {
    if (peer.closed) return;
    peer.closed = true;
    if (level !== undefined && message !== undefined && this.#closing === undefined) {
      this.#log(level, message, { ...this.#fields(peer), ...fields });
    }
    this.#peers.delete(peer);
    const ip = peer.conn.remoteAddr.hostname;
    const fromIp = (this.#perIp.get(ip) ?? 1) - 1;
    if (fromIp > 0) this.#perIp.set(ip, fromIp);
    else this.#perIp.delete(ip);
    if (peer.address !== undefined && this.#holders.get(peer.address) === peer) {
      this.#holders.delete(peer.address);
    }
    for (const end of [...peer.links.values()]) {
      if (!peer.links.has(end.id)) continue; // The other end of a link to itself.
      const other = end.other;
      this.#unlink(end);
      if (other.peer !== peer) {
        this.#sendFrame(other.peer, encodeRelayFrame({ type: "close", linkId: other.id }));
      }
    }
    peer.writer.close();
    closeQuietly(peer.conn);
  }

  #sweep(): void {
    const now = this.#clock();
    for (const peer of [...this.#peers]) {
      const silentMs = now - peer.lastReceived;
      if (silentMs > this.#limits.idleTimeoutMs) {
        this.#drop(peer, "info", "closing a silent connection", { silentMs });
      } else {
        this.#sendFrame(peer, PING_FRAME);
      }
    }
  }

  #fields(peer: Peer): Record<string, unknown> {
    return peer.address === undefined
      ? { conn: peer.id, remote: peer.remote }
      : { conn: peer.id, remote: peer.remote, address: peer.address };
  }
}

function allocateLinkId(peer: Peer): number {
  let id = peer.nextLinkId;
  while (peer.links.has(id)) id = id === MAX_LINK_ID ? RELAY_LINK_ID_FLAG : id + 1;
  peer.nextLinkId = id === MAX_LINK_ID ? RELAY_LINK_ID_FLAG : id + 1;
  return id;
}

function newAddress(): string {
  const random = crypto.getRandomValues(new Uint8Array(ADDRESS_RANDOM_BYTES));
  return FORWARDING_ADDRESS_PREFIX + random.toHex();
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

const LIMIT_RANGES: Readonly<Record<keyof RelayLimits, readonly [number, number]>> = {
  maxFrameLen: [MIN_RELAY_FRAME_LEN, MAX_RELAY_MESSAGE_LEN],
  maxConnections: [1, 1_000_000],
  maxConnectionsPerIp: [1, 1_000_000],
  maxLinksPerConnection: [1, 0x7fff_ffff],
  linkWindow: [INITIAL_LINK_CREDIT, MAX_LINK_WINDOW],
  maxQueuedBytes: [2 * (MAX_RELAY_MESSAGE_LEN + 4), Number.MAX_SAFE_INTEGER],
  heartbeatIntervalMs: [1, 3_600_000],
  idleTimeoutMs: [2, 86_400_000],
  maxRegistrations: [1, 100_000_000],
};

function resolveLimits(overrides: Partial<RelayLimits> | undefined): RelayLimits {
  if (overrides === undefined) return DEFAULT_RELAY_LIMITS;
  if (typeof overrides !== "object" || overrides === null) {
    throw new TypeError("RelayServer.start: limits must be an object");
  }
  const limits: Record<string, number> = { ...DEFAULT_RELAY_LIMITS };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const range = LIMIT_RANGES[key as keyof RelayLimits];
    if (range === undefined) {
      const known = Object.keys(LIMIT_RANGES).join(", ");
      throw new TypeError(`RelayServer.start: unknown limit "${key}" (known: ${known})`);
    }
    if (
      typeof value !== "number" || !Number.isInteger(value) || value < range[0] || value > range[1]
    ) {
      throw new RangeError(
        `RelayServer.start: limits.${key} must be an integer from ${range[0]} to ${range[1]}, ` +
          `got ${JSON.stringify(value)}`,
      );
    }
    limits[key] = value;
  }
  const resolved = limits as unknown as RelayLimits;
  if (resolved.idleTimeoutMs <= resolved.heartbeatIntervalMs) {
    throw new RangeError(
      `RelayServer.start: limits.idleTimeoutMs (${resolved.idleTimeoutMs}) must exceed ` +
        `limits.heartbeatIntervalMs (${resolved.heartbeatIntervalMs})`,
    );
  }
  return Object.freeze(resolved);
}
