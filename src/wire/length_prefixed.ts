/**
 * Length-prefixed binary frames over a byte stream.
 *
 * Wire format: each frame is a 4-byte big-endian unsigned length L followed by L bytes. A
 * decoder refuses any L above its maximum before buffering a single byte of the body, so a
 * peer cannot make it allocate more than the maximum plus one read.
 *
 * @module
 */

/** Size of the length prefix. */
export const LENGTH_PREFIX_LEN = 4;

const EMPTY = new Uint8Array(0);

/** A frame on the stream is malformed or larger than allowed; the stream must be closed. */
export class FrameError extends RangeError {
  override readonly name = "FrameError";
}

/**
 * One frame: the length prefix followed by `body`.
 *
 * @throws RangeError when body is longer than 2^32-1 bytes
 */
export function encodeFrame(body: Uint8Array): Uint8Array {
  if (body.length > 0xffff_ffff) throw new RangeError("frame body exceeds 2^32-1 bytes");
  const out = new Uint8Array(LENGTH_PREFIX_LEN + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, LENGTH_PREFIX_LEN);
  return out;
}

/**
 * Incremental decoder: push bytes as they arrive, take whole frames out.
 *
 * @example
 * ```ts
 * const decoder = new FrameDecoder(65544);
 * decoder.push(chunk);
 * for (let f = decoder.next(); f; f = decoder.next()) handle(f);
 * ```
 */
export class FrameDecoder {
  readonly #max: number;
  #buffer = new Uint8Array(0);
  #start = 0;
  #end = 0;
  /** The rest of a chunk given to feed(), read in place after the buffer's bytes. */
  #outside: Uint8Array | undefined;

  /** @param maxFrameLen the largest body accepted */
  constructor(maxFrameLen: number) {
    this.#max = maxFrameLen;
  }

  /** Bytes buffered and not yet returned as a frame. */
  get buffered(): number {
    return this.#end - this.#start + (this.#outside?.length ?? 0);
  }

  /**
   * Appends received bytes, reading whole frames in `chunk` where they lie: {@linkcode nextView}
   * returns views of `chunk` itself, and only the bytes that complete a frame begun before, or
   * begin one that ends later, are copied. For a read loop that takes every frame before it
   * reads into `chunk` again (a 256 KiB read of 64 KiB frames then copies at most a frame, not
   * every byte). `chunk` must not change until nextView() has returned undefined: the decoder
   * then holds a copy of any partial frame at its end, and nothing of `chunk`.
   */
  feed(chunk: Uint8Array): void {
    if (this.#outside !== undefined) this.push(EMPTY);
    if (this.#end > this.#start) {
      const needed = this.#toFinish(chunk);
      this.push(chunk.subarray(0, needed));
      chunk = chunk.subarray(needed);
    }
    if (chunk.length > 0) this.#outside = chunk;
  }

  /**
   * How many bytes of `chunk` to buffer to finish the frame the buffer begins: all of `chunk` if
   * that is not enough, or if a whole frame is buffered already (`chunk` then goes after it);
   * for a frame longer than the maximum, only the rest of its length prefix.
   */
  #toFinish(chunk: Uint8Array): number {
    const available = this.#end - this.#start;
    if (available + chunk.length < LENGTH_PREFIX_LEN) return chunk.length;
    const byte = (i: number) =>
      i < available ? this.#buffer[this.#start + i]! : chunk[i - available]!;
    const length = ((byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3)) >>> 0;
    // Too long: only the rest of the prefix, for nextView() to refuse.
    if (length > this.#max) return Math.max(0, LENGTH_PREFIX_LEN - available);
    const missing = LENGTH_PREFIX_LEN + length - available;
    return missing <= 0 ? chunk.length : Math.min(missing, chunk.length);
  }

  /** Appends received bytes (copied). */
  push(chunk: Uint8Array): void {
    if (this.#outside !== undefined) {
      // The rest of a fed chunk comes first.
      const rest = this.#outside;
      this.#outside = undefined;
      this.push(rest);
    }
    if (this.#end + chunk.length > this.#buffer.length) {
      const live = this.#end - this.#start;
      const size = Math.max(live + chunk.length, Math.min(this.#buffer.length * 2, this.#max + 8));
      const next = size <= this.#buffer.length ? this.#buffer : new Uint8Array(size);
      next.set(this.#buffer.subarray(this.#start, this.#end), 0);
      this.#buffer = next;
      this.#start = 0;
      this.#end = live;
    }
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /**
   * The next whole frame body (a copy), or undefined when more bytes are needed.
   *
   * @throws FrameError when the announced length exceeds the maximum
   */
  next(): Uint8Array | undefined {
    return this.nextView()?.slice();
  }

  /**
   * The next whole frame body as a view into the decoder's buffer or a fed chunk (no copy), or
   * undefined when more bytes are needed. The view is valid only until the next push() or
   * feed(): use it or copy it before then. For a receiver that consumes each frame at once, e.g.
   * a forwarder that copies it into a write batch.
   *
   * @throws FrameError when the announced length exceeds the maximum
   */
  nextView(): Uint8Array | undefined {
    const available = this.#end - this.#start;
    if (available === 0 && this.#outside !== undefined) return this.#nextOutside();
    if (available < LENGTH_PREFIX_LEN) return undefined;
    const b = this.#buffer;
    const at = this.#start;
    const length = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
    if (length > this.#max) {
      throw new FrameError(`frame of ${length} bytes exceeds the maximum of ${this.#max}`);
    }
    if (available < LENGTH_PREFIX_LEN + length) return undefined;
    const bodyStart = this.#start + LENGTH_PREFIX_LEN;
    const body = this.#buffer.subarray(bodyStart, bodyStart + length);
    this.#start = bodyStart + length;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return body;
  }

  /** The next frame of the fed chunk, in place; a partial one is buffered (copied) instead. */
  #nextOutside(): Uint8Array | undefined {
    const b = this.#outside!;
    if (b.length >= LENGTH_PREFIX_LEN) {
      const length = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
      if (length > this.#max) {
        throw new FrameError(`frame of ${length} bytes exceeds the maximum of ${this.#max}`);
      }
      if (b.length >= LENGTH_PREFIX_LEN + length) {
        const end = LENGTH_PREFIX_LEN + length;
        this.#outside = end === b.length ? undefined : b.subarray(end);
        return b.subarray(LENGTH_PREFIX_LEN, end);
      }
    }
    this.#outside = undefined;
    this.push(b);
    return undefined;
  }
}
