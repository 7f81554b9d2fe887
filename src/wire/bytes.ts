/**
 * Byte-string helpers shared by the layers.
 *
 * @module
 */

/**
 * The concatenation of `parts` in a new array (the only part itself when there is one and
 * `copy` is false).
 *
 * @example
 * ```ts
 * concatBytes([Uint8Array.of(1), Uint8Array.of(2, 3)]); // Uint8Array [1, 2, 3]
 * ```
 */
export function concatBytes(parts: readonly Uint8Array[], copy = true): Uint8Array {
  if (parts.length === 1 && !copy) return parts[0]!;
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Bytes of each slab that {@linkcode allocBytes} cuts small arrays from. */
const SLAB_LEN = 64 * 1024;
/** Largest array cut from a slab; a larger one gets an ArrayBuffer of its own. */
export const MAX_SLAB_ALLOC = 4 * 1024;
let slab = new ArrayBuffer(0);
let slabUsed = 0;

/**
 * A new zero-filled Uint8Array of `size` bytes, cheaply when it is small: up to
 * {@linkcode MAX_SLAB_ALLOC} bytes it is a view cut from a shared 64 KiB ArrayBuffer (a slab),
 * like Node's Buffer pool. In Deno 2.9 `new Uint8Array(470)` costs 1.6-1.8 µs, a backing store
 * allocated and registered for each array, and a view of an existing buffer under 0.1 µs
 * (bench/invocation_codec_bench.ts), on a path that makes a few small messages per request.
 *
 * A slab is never reused: a new one is taken when the current is full, and the old one is
 * collected once no view of it is left. So the bytes are always zero at first and never shared
 * with a later array, but `.buffer` is the slab (mind `byteOffset`; never transfer or detach it),
 * and a small view kept for long keeps its 64 KiB slab alive (`slice()` one meant to last).
 *
 * @example
 * ```ts
 * const header = allocBytes(6); // a view of a slab, 6 bytes, zero
 * new DataView(header.buffer, header.byteOffset, header.byteLength).setUint32(2, 7);
 * ```
 */
export function allocBytes(size: number): Uint8Array<ArrayBuffer> {
  if (size > MAX_SLAB_ALLOC) return new Uint8Array(size);
  if (slabUsed + size > slab.byteLength) {
    slab = new ArrayBuffer(SLAB_LEN);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, size);
  // The next array starts 8-aligned, as a fresh ArrayBuffer does.
  slabUsed += (size + 7) & ~7;
  return out;
}

/** Makes a zeroed array of `size` bytes: `allocBytes`, or `(size) => new Uint8Array(size)`. */
export type ByteAllocator = (size: number) => Uint8Array<ArrayBuffer>;

/**
 * A copy of `bytes` in an array made by `alloc` (such as {@linkcode allocBytes}), or by default
 * in a new array of its own.
 *
 * @example
 * ```ts
 * const mine = copyBytes(received, allocBytes); // the caller may now reuse `received`
 * ```
 */
export function copyBytes(
  bytes: Uint8Array,
  alloc: ByteAllocator = (size) => new Uint8Array(size),
): Uint8Array<ArrayBuffer> {
  const copy = alloc(bytes.length);
  copy.set(bytes);
  return copy;
}

const lenientUtf8 = new TextDecoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * `bytes` decoded as UTF-8, strictly: what `new TextDecoder("utf-8", { fatal: true })` gives,
 * throwing as it does on malformed bytes, at less cost. In Deno the fatal decoder takes a slower
 * path, a zeroed buffer allocated per call (2.8 times as long for a 250-byte JSON header:
 * bench/invocation_codec_bench.ts), so the lenient one decodes first; only a text that then
 * holds U+FFFD, a replaced malformed sequence or a genuine U+FFFD, is decoded again strictly.
 *
 * @throws {TypeError} when `bytes` is not valid UTF-8
 * @example
 * ```ts
 * decodeUtf8Strict(Uint8Array.of(0x68, 0x69)); // "hi"
 * ```
 */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  const text = lenientUtf8.decode(bytes);
  return text.includes("\uFFFD") ? strictUtf8.decode(bytes) : text;
}
