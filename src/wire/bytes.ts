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
