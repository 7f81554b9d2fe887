/**
 * Flow control of one body stream on a shared channel, as HTTP/2 does it: the receiver lets
 * the sender have {@linkcode INITIAL_WINDOW} bytes in flight and grants more (a WINDOW message)
 * as its consumer takes chunks. A slow consumer therefore stops its own stream only: the
 * channel keeps carrying every other invocation, and no side buffers more than a window per
 * stream.
 *
 * @module
 */

import { InvocationProtocolError } from "./invocation_codec.ts";

/**
 * Bytes of body a sender may have in flight per stream before the receiver grants more: 8 MiB,
 * as the relay's link window (DEFAULT_LINK_WINDOW, which says why).
 */
export const INITIAL_WINDOW: number = 8 * 1024 * 1024;
/**
 * Credit is granted in steps of at least this many bytes (one WINDOW message per step, not per
 * chunk); less than the window, so a sender waiting for credit always gets it.
 */
export const GRANT_STEP: number = INITIAL_WINDOW / 4;

/** The sending side of a stream: how many bytes it may still send. */
export class SendWindow {
  #available = INITIAL_WINDOW;
  #waiter: (() => void) | undefined;
  #failure: Error | undefined;

  /** Adds credit the receiver granted. */
  grant(bytes: number): void {
    this.#available += bytes;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  /** Ends every wait with `error` (the stream was cancelled or the channel ended). */
  fail(error: Error): void {
    this.#failure ??= error;
    this.grant(0);
  }

  /**
   * Waits for credit, then takes up to `max` bytes of it.
   *
   * @returns how many bytes may be sent now (at least 1)
   * @throws the error given to {@linkcode fail}
   */
  async reserve(max: number): Promise<number> {
    while (this.#available <= 0) {
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    if (this.#failure) throw this.#failure;
    const bytes = Math.min(max, this.#available);
    this.#available -= bytes;
    return bytes;
  }

  /**
   * Waits until `bytes` of credit are free, then takes them: for a sender whose message is
   * already filled. Never waits forever while the receiver consumes: with less than a message
   * free, more than {@linkcode GRANT_STEP} is in flight, and the receiver grants it back.
   *
   * @throws {RangeError} `bytes` is more than the window less a grant step
   * @throws the error given to {@linkcode fail}
   */
  async reserveAll(bytes: number): Promise<void> {
    if (bytes > INITIAL_WINDOW - GRANT_STEP) {
      throw new RangeError(`${bytes} bytes exceed what a window can take at once`);
    }
    while (this.#available < bytes) {
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    if (this.#failure) throw this.#failure;
    this.#available -= bytes;
  }
}

/**
 * The receiving side of a stream: chunks queue here (never more than the window granted) until
 * the consumer takes them; each chunk taken is granted back to the sender.
 */
export class ReceiveQueue {
  readonly #grant: (bytes: number) => void;
  readonly #chunks: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #failure: Error | undefined;
  #waiter: (() => void) | undefined;
  #owed = 0;

  /** @param grant sends the sender a WINDOW for bytes the consumer took */
  constructor(grant: (bytes: number) => void) {
    this.#grant = grant;
  }

  /**
   * Queues a chunk from the sender.
   *
   * @throws InvocationProtocolError when the sender exceeded the window it was granted
   */
  push(chunk: Uint8Array, end: boolean): void {
    if (this.#ended) throw new InvocationProtocolError("a chunk after the end of its stream");
    this.#queued += chunk.length;
    if (this.#queued > INITIAL_WINDOW) {
      throw new InvocationProtocolError("a stream exceeded its flow-control window");
    }
    if (chunk.length > 0) this.#chunks.push(chunk);
    this.#ended = end;
    this.#wake();
  }

  /** Ends the stream with an error for the consumer. */
  fail(error: Error): void {
    this.#failure ??= error;
    this.#wake();
  }

  /** The next chunk, or undefined at the end. @throws the error given to {@linkcode fail} */
  async next(): Promise<Uint8Array | undefined> {
    while (this.#chunks.length === 0) {
      if (this.#failure) throw this.#failure;
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
    return this.#take();
  }

  /** The first queued chunk, counted towards the sender's next WINDOW. */
  #take(): Uint8Array {
    const chunk = this.#chunks.shift()!;
    this.#queued -= chunk.length;
    this.#owed += chunk.length;
    if (!this.#ended && this.#owed >= GRANT_STEP) {
      this.#grant(this.#owed);
      this.#owed = 0;
    }
    return chunk;
  }

  /**
   * A chunk queued already, or undefined when none is (or the stream failed: {@linkcode next}
   * then throws): for a consumer that takes what is at hand before it waits.
   */
  takeReady(): Uint8Array | undefined {
    if (this.#chunks.length === 0 || this.#failure) return undefined;
    return this.#take();
  }

  /** The chunks as an async iterable (one consumer). */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (let chunk = await this.next(); chunk; chunk = await this.next()) yield chunk;
  }

  /** The chunks as a byte stream with back-pressure: a chunk is taken when the reader pulls. */
  readable(onCancel: (reason: unknown) => void): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const chunk = await this.next();
          if (chunk) controller.enqueue(chunk);
          else controller.close();
        } catch (error) {
          controller.error(error);
        }
      },
      cancel: (reason) => onCancel(reason),
    }, { highWaterMark: 0 });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
