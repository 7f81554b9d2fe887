/**
 * MessageTransport: anything that moves whole byte messages in order between two ends. The
 * secure channel runs over it; TCP (conn_transport.ts), the relay's links and an in-memory
 * pair implement it.
 *
 * @module
 */

/** Moves whole messages, in order, between two ends. */
export interface MessageTransport {
  /**
   * True when `send` is done with the message's bytes by the time it returns (it copied them,
   * or wrote them): the sender may then reuse its buffer at once, e.g. seal every frame into one
   * (in Deno a fresh 64 KiB buffer costs about 9 µs, and garbage collection on top).
   */
  readonly copiesMessages?: boolean;
  /** Sends one message; resolves once it is handed to the underlying stream. */
  send(message: Uint8Array): Promise<void>;
  /** The next message, or undefined once the transport is closed (by either end). */
  receive(): Promise<Uint8Array | undefined>;
  /** Closes both directions; idempotent. Pending and later receives resolve undefined. */
  close(): void;
}

/** The transport is closed: nothing more can be sent. */
export class TransportClosedError extends Error {
  override readonly name = "TransportClosedError";
  constructor(message = "the transport is closed", options?: ErrorOptions) {
    super(message, options);
  }
}

class MemoryEnd implements MessageTransport {
  readonly copiesMessages = true;
  peer: MemoryEnd | undefined;
  readonly #queue: Uint8Array[] = [];
  readonly #waiters: ((m: Uint8Array | undefined) => void)[] = [];
  #closed = false;

  deliver(message: Uint8Array): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(message);
    else this.#queue.push(message);
  }

  shut(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  send(message: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new TransportClosedError());
    this.peer!.deliver(message.slice());
    return Promise.resolve();
  }

  receive(): Promise<Uint8Array | undefined> {
    const next = this.#queue.shift();
    if (next) return Promise.resolve(next);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  close(): void {
    this.shut();
    this.peer?.shut();
  }
}

/**
 * Two connected in-memory ends: what one sends, the other receives. For tests and for
 * wiring components inside one process.
 *
 * @example
 * ```ts
 * const [a, b] = memoryTransportPair();
 * await a.send(new Uint8Array([1]));
 * await b.receive(); // Uint8Array [1]
 * ```
 */
export function memoryTransportPair(): [MessageTransport, MessageTransport] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
