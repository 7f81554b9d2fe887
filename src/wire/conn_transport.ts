/**
 * A MessageTransport over a Deno stream connection (TCP), with length-prefixed frames.
 *
 * @module
 */

import { encodeFrame, FrameDecoder } from "./length_prefixed.ts";
import { type MessageTransport, TransportClosedError } from "./message_transport.ts";

const READ_CHUNK = 64 * 1024;

/** Options of a ConnTransport. */
export interface ConnTransportOptions {
  /** Largest message accepted from the peer; a larger one closes the connection. */
  readonly maxMessageLen: number;
}

/**
 * Messages over a `Deno.Conn`. A malformed or oversized frame closes the connection (the error
 * is kept in `error`); receive() then resolves undefined.
 *
 * @example
 * ```ts
 * const t = new ConnTransport(await Deno.connect({ port }), { maxMessageLen: 65544 });
 * await t.send(bytes);
 * ```
 */
export class ConnTransport implements MessageTransport {
  /** The message is copied into its length-prefixed frame before `send` returns. */
  readonly copiesMessages = true;
  readonly #conn: Deno.Conn;
  readonly #decoder: FrameDecoder;
  readonly #readBuffer = new Uint8Array(READ_CHUNK);
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #error: Error | undefined;

  /** Wraps `conn`; the transport owns it from now on. */
  constructor(conn: Deno.Conn, options: ConnTransportOptions) {
    this.#conn = conn;
    this.#decoder = new FrameDecoder(options.maxMessageLen);
  }

  /** Why the transport closed itself (a malformed frame or an I/O error), if it did. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Sends one message; sends are written in call order. */
  send(message: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new TransportClosedError());
    const frame = encodeFrame(message);
    const write = this.#writing.then(() => this.#writeAll(frame));
    this.#writing = write.catch(() => {});
    return write;
  }

  /** The next message, or undefined once closed. */
  async receive(): Promise<Uint8Array | undefined> {
    while (!this.#closed) {
      try {
        const frame = this.#decoder.next();
        if (frame) return frame;
        const n = await this.#conn.read(this.#readBuffer);
        if (n === null) break;
        this.#decoder.feed(this.#readBuffer.subarray(0, n));
      } catch (error) {
        if (!this.#closed) this.#error = error as Error;
        break;
      }
    }
    this.close();
    return undefined;
  }

  /** Closes the connection; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or the runtime.
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    try {
      while (offset < bytes.length) offset += await this.#conn.write(bytes.subarray(offset));
    } catch (cause) {
      this.close();
      throw new TransportClosedError("the connection failed while sending", { cause });
    }
  }
}
