/**
 * JSON text as Go's `encoding/json` writes it, for byte-for-byte compatibility with what
 * Suborbital's Reactr returned to runnables (Reactr is Go): map keys sorted by bytes, `<`, `>`,
 * `&`, U+2028 and U+2029 escaped, other control characters as `\u00XX` except `\n`, `\r`, `\t`,
 * and floats in Go's shortest form (`1e+21`, `1e-7`).
 *
 * @module
 */

const encoder = new TextEncoder();

/** A JSON string literal as Go (≤ 1.21, the Reactr era) encodes it with HTML escaping on. */
export function goString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || ch === "<" || ch === ">" || ch === "&" || c === 0x2028 || c === 0x2029) {
      out += "\\u" + c.toString(16).padStart(4, "0");
    } else if (c >= 0xd800 && c <= 0xdfff) {
      out += "\\ufffd"; // a lone surrogate: Go writes the replacement character
    } else out += ch;
  }
  return out + '"';
}

/**
 * A float64 as Go's encoder writes it: `strconv` shortest form, exponent form below 1e-6 and
 * from 1e21 on (the same thresholds JavaScript uses), `-0` kept.
 *
 * @throws {RangeError} NaN or an infinity (Go's encoder refuses them too)
 */
export function goFloat(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`JSON cannot represent ${n}`);
  if (Object.is(n, -0)) return "-0";
  return String(n);
}

/** An object with keys sorted as Go sorts a `map[string]interface{}` (by UTF-8 bytes). */
export function goObject(entries: ReadonlyMap<string, string>): string {
  const keys = [...entries.keys()].sort(compareUtf8);
  return "{" + keys.map((k) => `${goString(k)}:${entries.get(k)}`).join(",") + "}";
}

function compareUtf8(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

/** Standard base64 with padding, as Go encodes a `[]byte`. */
export function goBytes(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return `"${btoa(bin)}"`;
}
