/**
 * The receive buffer of a database connection: bytes read from the socket wait here until
 * whole protocol messages can be taken from the front.
 *
 * @module
 */

/** Bytes each read may fill at least. */
const READ_CHUNK = 64 * 1024;

/**
 * Grows to hold a message longer than a read, and shrinks back once a burst is over.
 *
 * @example
 * ```ts
 * const received = new ReadBuffer();
 * const n = await conn.read(received.room());
 * if (n !== null) received.filled(n);
 * received.consume(parse(received.bytes)); // bytes used by the whole messages taken
 * ```
 */
export class ReadBuffer {
  #buffer = new Uint8Array(READ_CHUNK);
  #end = 0;

  /** The bytes received and not yet consumed (a view, valid until the next call). */
  get bytes(): Uint8Array {
    return this.#buffer.subarray(0, this.#end);
  }

  /** Where the next read goes: at least READ_CHUNK free bytes after those waiting. */
  room(): Uint8Array {
    if (this.#buffer.length - this.#end < READ_CHUNK) {
      const grown = new Uint8Array(Math.max(this.#buffer.length * 2, this.#end + READ_CHUNK));
      grown.set(this.#buffer.subarray(0, this.#end));
      this.#buffer = grown;
    }
    return this.#buffer.subarray(this.#end);
  }

  /** Counts `n` bytes a read put into {@linkcode ReadBuffer.room}. */
  filled(n: number): void {
    this.#end += n;
  }

  /** Drops the first `used` bytes; a buffer grown for a burst shrinks once little waits. */
  consume(used: number): void {
    this.#buffer.copyWithin(0, used, this.#end);
    this.#end -= used;
    if (this.#buffer.length > READ_CHUNK * 4 && this.#end < READ_CHUNK) {
      this.#buffer = this.#buffer.slice(0, READ_CHUNK * 2);
    }
  }
}
