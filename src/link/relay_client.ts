/**
 * A LinkNetwork over one TCP connection to a Stratos relay (protocol: src/wire/relay_protocol.ts).
 * Every link is a MessageTransport multiplexed on that connection with its own credit-based
 * flow control: a link whose reader falls behind blocks only its own sender.
 *
 * @module
 */

import {
  BatchedFrameWriter,
  DATA_HEADER_LEN,
  decodeRelayMessage,
  DEFAULT_LINK_WINDOW,
  encodeRelayFrame,
  FrameDecoder,
  FrameError,
  INITIAL_LINK_CREDIT,
  MAX_LINK_MESSAGE_LEN,
  MAX_LINK_WINDOW,
  MAX_RELAY_MESSAGE_LEN,
  type MessageTransport,
  readU32,
  registrationMessage,
  RELAY_LINK_ID_FLAG,
  type RelayLog,
  RelayMessageType,
  TransportClosedError,
} from "../wire/mod.ts";
import {
  FORWARDING_ADDRESS_PATTERN,
  LinkError,
  type LinkListener,
  type LinkNetwork,
  type ListenOptions,
  RegistrationError,
  type RegistrationSigner,
} from "./link_network.ts";

/** Options of {@link connectRelay}. */
export interface RelayClientOptions {
  /**
   * Most bytes a peer may have in flight to this node per link (this node's receive buffer
   * per link); default {@link DEFAULT_LINK_WINDOW}. Must not exceed the relay's `linkWindow`.
   */
  readonly linkWindow?: number;
  /** How often to send PING; default 15 000 ms. */
  readonly heartbeatIntervalMs?: number;
  /** The relay is considered gone after this long without a byte from it; default 45 000 ms. */
  readonly idleTimeoutMs?: number;
  /**
   * How long to wait for the relay's CHALLENGE, REGISTERED/REFUSED and OPENED/OPEN_FAILED;
   * default 10 000 ms. A relay that does not answer in time is considered broken: the
   * connection is closed.
   */
  readonly requestTimeoutMs?: number;
  /** Where events go; default nowhere. */
  readonly log?: RelayLog;
  /** Milliseconds since the epoch; default `Date.now`. */
  readonly clock?: () => number;
}

/** The client options used when {@link connectRelay} is given none. */
export const DEFAULT_RELAY_CLIENT_OPTIONS: Readonly<
  Required<Omit<RelayClientOptions, "log" | "clock">>
> = Object.freeze({
  linkWindow: DEFAULT_LINK_WINDOW,
  heartbeatIntervalMs: 15_000,
  idleTimeoutMs: 45_000,
  requestTimeoutMs: 10_000,
});

/** How long close() lets already queued frames drain before it cuts the connection. */
const CLOSE_GRACE_MS = 2_000;
/** Read buffer of the connection to the relay: 256 KiB, as the relay's own (relay_server.ts). */
const READ_CHUNK_LEN = 256 * 1024;

/**
 * Lets the event loop run its other tasks. A read that fills the whole buffer usually finds the
 * next one ready too, and an awaited read that is already done continues in a microtask: while
 * the relay keeps the socket full, the loop would never give the event loop a turn, and what
 * waits for one (a Wasm worker asking for the next chunk of a body, the credit this side owes,
 * timers) would wait until the socket ran dry (measured on a 100 MiB upload: the sat's worker
 * waited 5 ms for each MiB while 3 MiB were read and opened).
 */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Largest link id this node picks (the top bit marks ids the relay picks). */
const MAX_NODE_LINK_ID = RELAY_LINK_ID_FLAG - 1;
const PING_FRAME = encodeRelayFrame({ type: "ping" });
const PONG_FRAME = encodeRelayFrame({ type: "pong" });
const RESOLVED: Promise<void> = Promise.resolve();
const ENDED: Promise<undefined> = Promise.resolve(undefined);

/** The relay broke the protocol in a way the codec cannot see. */
class RelayProtocolError extends Error {
  override readonly name = "RelayProtocolError";
}

/**
 * Connects to a relay and returns the node's LinkNetwork on that one TCP connection. Resolves
 * once the relay has sent its CHALLENGE (so it speaks the protocol).
 *
 * @param hostPort The relay's host name and port.
 * @param options Link window, heartbeats, timeouts, log and clock.
 * @returns The network; `listen()` registers an address, `connect()` opens links.
 * @throws {TypeError} / {RangeError} when `hostPort` or an option is malformed.
 * @throws {LinkError} when the relay cannot be reached or does not send its CHALLENGE in time.
 * @example
 * ```ts
 * const network = await connectRelay({ hostname: "relay.example", port: 4000 });
 * const listener = await network.listen(identity);
 * console.log(listener.address); // FWD_0123456789abcdef
 * const link = await listener.accept();
 * ```
 */
export async function connectRelay(
  hostPort: { hostname: string; port: number },
  options: RelayClientOptions = {},
): Promise<LinkNetwork> {
  if (typeof hostPort?.hostname !== "string" || hostPort.hostname === "") {
    throw new TypeError("connectRelay: hostPort.hostname must be a non-empty string");
  }
  const { hostname, port } = hostPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`connectRelay: port must be 1 to 65535, got ${port}`);
  }
  const settings = resolveOptions(options);
  const where = `${hostname}:${port}`;
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname, port, transport: "tcp" });
  } catch (cause) {
    throw new LinkError(`cannot reach the relay at ${where}: ${(cause as Error).message}`, {
      cause,
    });
  }
  return await startNetwork(conn, where, settings);
}

/** What the client uses of its connection to the relay; a `Deno.TcpConn` is one. */
export type RelayConnection = Pick<Deno.TcpConn, "read" | "write" | "close" | "setNoDelay">;

/**
 * {@link connectRelay} over a connection the caller made: a test seam, so that a test can play
 * the relay's side of the protocol exactly as it wants (say, a socket that always has data
 * ready). Not for production: use {@link connectRelay}.
 *
 * @param conn The connection, on which the relay's CHALLENGE comes first.
 * @param where How errors and logs name the relay.
 * @param options As for {@link connectRelay}.
 * @returns The network, once the CHALLENGE arrived.
 * @throws {LinkError} as {@link connectRelay} does.
 * @example
 * ```ts
 * const network = await connectRelayOverForTesting(scriptedConnection, "scripted relay");
 * ```
 */
export function connectRelayOverForTesting(
  conn: RelayConnection,
  where: string,
  options: RelayClientOptions = {},
): Promise<LinkNetwork> {
  return startNetwork(conn, where, resolveOptions(options));
}

async function startNetwork(
  conn: RelayConnection,
  where: string,
  settings: Settings,
): Promise<LinkNetwork> {
  const network = new RelayNetwork(conn, where, settings);
  try {
    await network.ready;
  } catch (error) {
    network.close();
    await network.closed;
    throw error;
  }
  return network;
}

interface Settings {
  readonly linkWindow: number;
  readonly grantThreshold: number;
  readonly heartbeatIntervalMs: number;
  readonly idleTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly log: RelayLog;
  readonly clock: () => number;
}

function resolveOptions(options: RelayClientOptions): Settings {
  const number = (key: keyof typeof DEFAULT_RELAY_CLIENT_OPTIONS, min: number, max: number) => {
    const value = options[key] ?? DEFAULT_RELAY_CLIENT_OPTIONS[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(
        `connectRelay: ${key} must be an integer from ${min} to ${max}, got ${
          JSON.stringify(value)
        }`,
      );
    }
    return value;
  };
  const linkWindow = number("linkWindow", INITIAL_LINK_CREDIT, MAX_LINK_WINDOW);
  const heartbeatIntervalMs = number("heartbeatIntervalMs", 1, 3_600_000);
  const idleTimeoutMs = number("idleTimeoutMs", heartbeatIntervalMs + 1, 86_400_000);
  const requestTimeoutMs = number("requestTimeoutMs", 1, 3_600_000);
  return {
    linkWindow,
    // Credit goes back in batches of this many consumed bytes. Never more than the window
    // minus the largest message, so that a sender waiting for room for one message always
    // gets it once the reader has consumed everything.
    grantThreshold: Math.max(1, Math.min(linkWindow >> 2, linkWindow - MAX_LINK_MESSAGE_LEN)),
    heartbeatIntervalMs,
    idleTimeoutMs,
    requestTimeoutMs,
    log: options.log ?? (() => {}),
    clock: options.clock ?? Date.now,
  };
}

/** What a link needs from its network. */
interface LinkPort {
  readonly settings: Settings;
  sendData(linkId: number, message: Uint8Array): void;
  sendCredit(linkId: number, bytes: number): void;
  /** Sends CLOSE and forgets the link. */
  closeLink(linkId: number): void;
}

/** The network's handle on one of its links. */
interface LinkControl {
  readonly link: MessageTransport;
  /** A DATA payload arrived. @throws RelayProtocolError beyond the credit granted. */
  deliver(payload: Uint8Array): void;
  addCredit(bytes: number): void;
  /** The peer closed the link or the connection was lost. */
  ended(): void;
}

interface PendingSend {
  readonly message: Uint8Array;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** One link: a MessageTransport with credit-based flow control in both directions. */
class RelayLink implements MessageTransport {
  /**
   * `send` copies the message into the connection's write batch, or, while the link waits for
   * credit, into a copy it keeps.
   */
  readonly copiesMessages = true;
  readonly #id: number;
  readonly #port: LinkPort;
  #sendCredit = INITIAL_LINK_CREDIT;
  #blocked: PendingSend[] = [];
  #blockedHead = 0;
  #inbox: (Uint8Array | undefined)[] = [];
  #inboxHead = 0;
  #waiters: ((message: Uint8Array | undefined) => void)[] = [];
  /** Credit granted to the peer and not yet used: the most it may still send. */
  #receivable: number;
  /** Bytes consumed and not yet granted back. */
  #toGrant = 0;
  #open = true;
  #ended = false;

  private constructor(id: number, port: LinkPort) {
    this.#id = id;
    this.#port = port;
    this.#receivable = INITIAL_LINK_CREDIT;
  }

  /** A new link and its control handle; grants the rest of the window to the peer. */
  static create(id: number, port: LinkPort): LinkControl {
    const link = new RelayLink(id, port);
    const extra = port.settings.linkWindow - INITIAL_LINK_CREDIT;
    if (extra > 0) {
      port.sendCredit(id, extra);
      link.#receivable += extra;
    }
    return {
      link,
      deliver: (payload) => link.#deliver(payload),
      addCredit: (bytes) => link.#addCredit(bytes),
      ended: () => link.#end(false),
    };
  }

  /**
   * Sends one message, in call order. Resolves at once while the peer's credit allows, else
   * once enough credit has come back (back-pressure).
   */
  send(message: Uint8Array): Promise<void> {
    if (!(message instanceof Uint8Array)) {
      return Promise.reject(new TypeError("link message must be a Uint8Array"));
    }
    if (!this.#open) return Promise.reject(new TransportClosedError("the link is closed"));
    if (message.length > MAX_LINK_MESSAGE_LEN) {
      return Promise.reject(
        new RangeError(
          `link message of ${message.length} bytes exceeds the maximum of ${MAX_LINK_MESSAGE_LEN}`,
        ),
      );
    }
    if (this.#blockedHead === this.#blocked.length && message.length <= this.#sendCredit) {
      this.#sendCredit -= message.length;
      this.#port.sendData(this.#id, message);
      return RESOLVED;
    }
    // Kept until credit comes back: a copy, since the caller may reuse its buffer once send
    // returns (copiesMessages).
    return new Promise((resolve, reject) =>
      this.#blocked.push({ message: message.slice(), resolve, reject })
    );
  }

  /** The next message in order, or undefined once the link is closed and drained. */
  receive(): Promise<Uint8Array | undefined> {
    if (this.#inboxHead < this.#inbox.length) {
      const message = this.#inbox[this.#inboxHead]!;
      this.#inbox[this.#inboxHead++] = undefined;
      if (this.#inboxHead === this.#inbox.length) {
        this.#inbox = [];
        this.#inboxHead = 0;
      }
      this.#consumed(message.length);
      return Promise.resolve(message);
    }
    if (this.#ended) return ENDED;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Closes the link at both ends; idempotent. Pending and later receives resolve undefined. */
  close(): void {
    const wasOpen = this.#open;
    this.#end(true);
    if (wasOpen) this.#port.closeLink(this.#id);
  }

  #deliver(payload: Uint8Array): void {
    if (payload.length > this.#receivable) {
      throw new RelayProtocolError(
        `DATA of ${payload.length} bytes on link ${this.#id} exceeds the ${this.#receivable} ` +
          "bytes of credit granted",
      );
    }
    this.#receivable -= payload.length;
    if (this.#ended) return;
    const waiter = this.#waiters.shift();
    if (waiter === undefined) {
      this.#inbox.push(payload);
      return;
    }
    this.#consumed(payload.length);
    waiter(payload);
  }

  #consumed(bytes: number): void {
    if (!this.#open) return;
    this.#toGrant += bytes;
    if (this.#toGrant >= this.#port.settings.grantThreshold) {
      this.#port.sendCredit(this.#id, this.#toGrant);
      this.#receivable += this.#toGrant;
      this.#toGrant = 0;
    }
  }

  #addCredit(bytes: number): void {
    this.#sendCredit += bytes;
    const blocked = this.#blocked;
    while (this.#blockedHead < blocked.length) {
      const next = blocked[this.#blockedHead]!;
      if (next.message.length > this.#sendCredit) break;
      this.#sendCredit -= next.message.length;
      this.#port.sendData(this.#id, next.message);
      this.#blockedHead++;
      next.resolve();
    }
    if (this.#blockedHead === blocked.length) {
      this.#blocked = [];
      this.#blockedHead = 0;
    }
  }

  /** `local`: close() was called (drop unread messages); else the peer or the network ended. */
  #end(local: boolean): void {
    this.#open = false;
    this.#ended = true;
    if (local) {
      this.#inbox = [];
      this.#inboxHead = 0;
    }
    const blocked = this.#blocked.slice(this.#blockedHead);
    this.#blocked = [];
    this.#blockedHead = 0;
    for (const pending of blocked) {
      pending.reject(new TransportClosedError("the link closed before the message was sent"));
    }
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }
}

/** The network's handle on its listener. */
interface ListenerControl {
  readonly listener: RelayListener;
  push(link: LinkControl): void;
  end(): void;
}

/** Links arriving on a registered address. */
class RelayListener implements LinkListener {
  /** The forwarding address. */
  readonly address: string;
  readonly #onClose: () => void;
  #queue: MessageTransport[] = [];
  #waiters: ((link: MessageTransport | undefined) => void)[] = [];
  #closed = false;

  private constructor(address: string, onClose: () => void) {
    this.address = address;
    this.#onClose = onClose;
  }

  static create(address: string, onClose: () => void): ListenerControl {
    const listener = new RelayListener(address, onClose);
    return {
      listener,
      push: (control) => listener.#push(control.link),
      end: () => listener.#end(),
    };
  }

  /** The next incoming link, or undefined once the listener or the connection is closed. */
  accept(): Promise<MessageTransport | undefined> {
    const next = this.#queue.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.#closed) return ENDED;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Stops accepting (links not yet accepted are closed); accepted links stay open. */
  close(): void {
    if (this.#closed) return;
    this.#end();
    this.#onClose();
  }

  #push(link: MessageTransport): void {
    if (this.#closed) {
      link.close();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(link);
    else this.#queue.push(link);
  }

  #end(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
    for (const link of this.#queue.splice(0)) link.close();
  }
}

interface Pending<T> {
  readonly what: string;
  readonly resolve: (value: T) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** One node's connection to the relay. */
class RelayNetwork implements LinkNetwork {
  readonly closed: Promise<Error | undefined>;
  readonly ready: Promise<void>;
  readonly #conn: RelayConnection;
  readonly #where: string;
  readonly #settings: Settings;
  readonly #writer: BatchedFrameWriter;
  readonly #decoder = new FrameDecoder(MAX_RELAY_MESSAGE_LEN);
  readonly #links = new Map<number, LinkControl>();
  readonly #opens = new Map<number, Pending<MessageTransport>>();
  readonly #port: LinkPort;
  readonly #readTask: Promise<void>;
  readonly #heartbeat: ReturnType<typeof setInterval>;
  readonly #resolveClosed: (error: Error | undefined) => void;
  #ready: Pending<void> | undefined;
  #registration: Pending<LinkListener> | undefined;
  #listener: ListenerControl | undefined;
  #address: string | undefined;
  #challenge: Uint8Array | undefined;
  #nextLinkId = 1;
  #lastReceived: number;
  #done = false;

  constructor(conn: RelayConnection, where: string, settings: Settings) {
    this.#conn = conn;
    this.#where = where;
    this.#settings = settings;
    try {
      conn.setNoDelay(true);
    } catch {
      // Not fatal: only latency suffers.
    }
    const closed = Promise.withResolvers<Error | undefined>();
    this.closed = closed.promise;
    this.#resolveClosed = closed.resolve;
    this.#writer = new BatchedFrameWriter(conn, {
      onError: (error) =>
        this.#shutdown(new LinkError("writing to the relay failed", { cause: error })),
    });
    this.#port = {
      settings,
      sendData: (id, message) => this.#writer.writeDataFrame(id, message),
      sendCredit: (id, bytes) =>
        this.#writer.writeFrame(encodeRelayFrame({ type: "credit", linkId: id, bytes })),
      closeLink: (id) => {
        if (this.#links.delete(id)) {
          this.#writer.writeFrame(encodeRelayFrame({ type: "close", linkId: id }));
        }
      },
    };
    const ready = Promise.withResolvers<void>();
    this.ready = ready.promise;
    this.#ready = this.#pending("the relay's CHALLENGE", ready.resolve, ready.reject);
    this.#lastReceived = settings.clock();
    this.#heartbeat = setInterval(() => this.#beat(), settings.heartbeatIntervalMs);
    this.#readTask = this.#readLoop();
  }

  /**
   * Registers and listens on a forwarding address (one per connection).
   *
   * @throws {TypeError} on a malformed signer or address.
   * @throws {RegistrationError} when the relay refuses, the connection already listens, or it
   *   is closed.
   */
  async listen(signer: RegistrationSigner, options: ListenOptions = {}): Promise<LinkListener> {
    if (
      typeof signer !== "object" || signer === null ||
      !(signer.publicKey instanceof Uint8Array) || typeof signer.sign !== "function"
    ) {
      throw new TypeError("listen: signer must have a publicKey and a sign() method");
    }
    const address = options.address ?? this.#address ?? "";
    if (address !== "") checkAddress("listen", address);
    if (this.#done) throw new RegistrationError("the relay connection is closed");
    if (this.#registration !== undefined) {
      throw new RegistrationError("a registration is already in progress on this connection");
    }
    if (this.#listener !== undefined) {
      throw new RegistrationError(
        `this connection already listens on ${this.#listener.listener.address}; close that ` +
          "listener first, or connect again to listen on another address",
      );
    }
    const signature = signer.sign(registrationMessage(this.#challenge!, address));
    const { promise, resolve, reject } = Promise.withResolvers<LinkListener>();
    this.#registration = this.#pending("the registration", resolve, reject);
    this.#writer.writeFrame(
      encodeRelayFrame({ type: "register", publicKey: signer.publicKey, address, signature }),
    );
    return await promise;
  }

  /**
   * Opens a link to a forwarding address.
   *
   * @throws {TypeError} on a malformed address.
   * @throws {LinkError} when the address is unknown or offline, a limit is reached, or the
   *   connection is closed.
   */
  async connect(address: string): Promise<MessageTransport> {
    checkAddress("connect", address);
    if (this.#done) {
      throw new LinkError(`cannot open a link to ${address}: the relay connection is closed`);
    }
    let id = this.#nextLinkId;
    while (this.#links.has(id) || this.#opens.has(id)) id = id >= MAX_NODE_LINK_ID ? 1 : id + 1;
    this.#nextLinkId = id >= MAX_NODE_LINK_ID ? 1 : id + 1;
    const { promise, resolve, reject } = Promise.withResolvers<MessageTransport>();
    this.#opens.set(id, this.#pending(`the link to ${address}`, resolve, reject));
    this.#writer.writeFrame(encodeRelayFrame({ type: "open", linkId: id, address }));
    return await promise;
  }

  /** Closes the connection after flushing what is queued (briefly); every link ends. */
  close(): void {
    this.#shutdown(undefined);
  }

  /** A request the relay must answer within the request timeout, or the connection is closed. */
  #pending<T>(
    what: string,
    resolve: (value: T) => void,
    reject: (error: Error) => void,
  ): Pending<T> {
    const ms = this.#settings.requestTimeoutMs;
    const timer = setTimeout(
      () => this.#shutdown(new LinkError(`the relay did not answer ${what} within ${ms} ms`)),
      ms,
    );
    return { what, resolve, reject, timer };
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_CHUNK_LEN);
    let error: Error | undefined;
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (this.#done) return;
        if (n === null) {
          error = new LinkError(`the relay at ${this.#where} closed the connection`);
          break;
        }
        this.#lastReceived = this.#settings.clock();
        this.#decoder.feed(buffer.subarray(0, n));
        for (let body = this.#decoder.next(); body !== undefined; body = this.#decoder.next()) {
          this.#onMessage(body);
          if (this.#done) return;
        }
        if (n === buffer.length) await nextTurn();
      }
    } catch (cause) {
      if (this.#done) return;
      error = cause instanceof FrameError || cause instanceof RelayProtocolError
        ? new LinkError(`the relay at ${this.#where} broke the protocol: ${cause.message}`, {
          cause,
        })
        : new LinkError(`the connection to the relay at ${this.#where} failed`, { cause });
    }
    this.#shutdown(error);
  }

  #onMessage(body: Uint8Array): void {
    // DATA is the hot path: no message object, the payload is a view of the frame.
    if (body[0] === RelayMessageType.DATA) {
      if (body.length < DATA_HEADER_LEN) {
        throw new FrameError(`relay message truncated: DATA of ${body.length} bytes`);
      }
      this.#links.get(readU32(body, 1))?.deliver(body.subarray(DATA_HEADER_LEN));
      return;
    }
    const message = decodeRelayMessage(body);
    switch (message.type) {
      case "challenge": {
        const ready = this.#ready;
        if (ready === undefined) throw new RelayProtocolError("a second CHALLENGE");
        clearTimeout(ready.timer);
        this.#ready = undefined;
        this.#challenge = message.challenge.slice();
        ready.resolve();
        return;
      }
      case "registered": {
        const pending = this.#takeRegistration("REGISTERED");
        this.#address = message.address;
        const control = RelayListener.create(message.address, () => {
          if (this.#listener === control) this.#listener = undefined;
        });
        this.#listener = control;
        this.#settings.log("info", "listening on a forwarding address", {
          relay: this.#where,
          address: message.address,
        });
        pending.resolve(control.listener);
        return;
      }
      case "refused": {
        if (this.#registration !== undefined) {
          this.#takeRegistration("REFUSED").reject(
            new RegistrationError(`the relay refused the registration: ${message.reason}`),
          );
        } else if (this.#listener !== undefined) {
          // Unsolicited: the relay ended this connection's registration (taken over).
          this.#settings.log("warn", `the relay ended the listener: ${message.reason}`, {
            relay: this.#where,
            address: this.#listener.listener.address,
          });
          this.#listener.end();
          this.#listener = undefined;
        }
        return;
      }
      case "opened": {
        const pending = this.#takeOpen(message.linkId, "OPENED");
        const control = RelayLink.create(message.linkId, this.#port);
        this.#links.set(message.linkId, control);
        pending.resolve(control.link);
        return;
      }
      case "open-failed": {
        const pending = this.#takeOpen(message.linkId, "OPEN_FAILED");
        pending.reject(new LinkError(`cannot open ${pending.what}: ${message.reason}`));
        return;
      }
      case "incoming": {
        if (this.#links.has(message.linkId)) {
          throw new RelayProtocolError(`INCOMING reuses link id ${message.linkId}, still open`);
        }
        if (this.#listener === undefined) {
          this.#writer.writeFrame(encodeRelayFrame({ type: "close", linkId: message.linkId }));
          return;
        }
        const control = RelayLink.create(message.linkId, this.#port);
        this.#links.set(message.linkId, control);
        this.#listener.push(control);
        return;
      }
      case "credit":
        this.#links.get(message.linkId)?.addCredit(message.bytes);
        return;
      case "close": {
        const control = this.#links.get(message.linkId);
        if (control === undefined) return;
        this.#links.delete(message.linkId);
        control.ended();
        return;
      }
      case "ping":
        this.#writer.writeFrame(PONG_FRAME);
        return;
      case "pong":
        return;
      default:
        throw new RelayProtocolError(
          `the relay sent ${message.type.toUpperCase()}, which only nodes send`,
        );
    }
  }

  #takeOpen(linkId: number, type: string): Pending<MessageTransport> {
    const pending = this.#opens.get(linkId);
    if (pending === undefined) {
      throw new RelayProtocolError(`${type} for link ${linkId}, which this node did not open`);
    }
    this.#opens.delete(linkId);
    clearTimeout(pending.timer);
    return pending;
  }

  #takeRegistration(type: string): Pending<LinkListener> {
    const pending = this.#registration;
    if (pending === undefined) throw new RelayProtocolError(`${type} without a registration`);
    this.#registration = undefined;
    clearTimeout(pending.timer);
    return pending;
  }

  #beat(): void {
    const silentMs = this.#settings.clock() - this.#lastReceived;
    if (silentMs > this.#settings.idleTimeoutMs) {
      this.#shutdown(new LinkError(`the relay at ${this.#where} was silent for ${silentMs} ms`));
    } else {
      this.#writer.writeFrame(PING_FRAME);
    }
  }

  /** Ends everything once: `error` undefined means a local close(). */
  #shutdown(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    clearInterval(this.#heartbeat);
    if (error !== undefined) {
      this.#settings.log("warn", "lost the relay connection", {
        relay: this.#where,
        error: error.message,
      });
    }
    const cause = error ?? new LinkError("the relay connection was closed");
    if (this.#ready !== undefined) {
      clearTimeout(this.#ready.timer);
      this.#ready.reject(
        new LinkError(`no CHALLENGE from the relay at ${this.#where}: ${cause.message}`, {
          cause,
        }),
      );
      this.#ready = undefined;
    }
    if (this.#registration !== undefined) {
      const pending = this.#registration;
      this.#registration = undefined;
      clearTimeout(pending.timer);
      pending.reject(
        new RegistrationError(`the registration was not answered: ${cause.message}`, { cause }),
      );
    }
    for (const pending of this.#opens.values()) {
      clearTimeout(pending.timer);
      pending.reject(new LinkError(`cannot open ${pending.what}: ${cause.message}`, { cause }));
    }
    this.#opens.clear();
    for (const control of this.#links.values()) control.ended();
    this.#links.clear();
    this.#listener?.end();
    this.#listener = undefined;
    void this.#finish(error);
  }

  async #finish(error: Error | undefined): Promise<void> {
    if (error === undefined) {
      // A local close: give what is already queued (e.g. a final message and CLOSE) a moment.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#writer.drain(),
        new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_GRACE_MS)),
      ]);
      clearTimeout(timer);
    }
    this.#writer.close();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    await this.#readTask;
    await this.#writer.settled();
    this.#resolveClosed(error);
  }
}

function checkAddress(what: string, address: unknown): void {
  if (typeof address !== "string" || !FORWARDING_ADDRESS_PATTERN.test(address)) {
    throw new TypeError(
      `${what}: not a forwarding address: ${JSON.stringify(address)} ` +
        "(expected FWD_ and 16 lower-case hex digits)",
    );
  }
}
