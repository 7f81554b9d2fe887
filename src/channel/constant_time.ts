/**
 * Constant-time comparison of secrets (MACs, tokens, ticket secret hashes).
 *
 * @module
 */

/**
 * Compares two byte strings without a data-dependent early exit: every byte pair is XORed into
 * one accumulator over the full length, so the time taken does not reveal where the first
 * difference is. Lengths are not secret here (callers compare fixed-size values), so strings
 * of different lengths return false at once.
 *
 * @param a The first byte string.
 * @param b The second byte string.
 * @returns True when `a` and `b` have the same length and the same bytes.
 * @throws Never.
 * @example
 * ```ts
 * constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])); // true
 * constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])); // false
 * ```
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    diff |= a[i]! ^ b[i]!;
  }
  return diff === 0;
}
