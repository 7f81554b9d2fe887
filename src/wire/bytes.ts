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
