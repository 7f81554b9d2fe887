/**
 * Values in and out of PostgreSQL in text format: how a column's text becomes a JavaScript
 * value by its type OID (`pg_type.oid`, fixed for built-in types), and how a parameter becomes
 * text.
 *
 * @module
 */

/** Type OIDs of the built-in types this client decodes (src/include/catalog/pg_type.dat). */
export const PG_TYPE = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

/**
 * A decoded column value. `bool` → boolean; `int2`, `int4`, `oid` → number; `int8` → number,
 * or bigint beyond ±2^53; `float4`, `float8` → number (NaN and ±Infinity included); `bytea` →
 * Uint8Array; SQL NULL → null; everything else (numeric, text, json, dates and times in ISO
 * style, uuid, ...) → the server's text.
 */
export type PgValue = string | number | bigint | boolean | null | Uint8Array;

/** A parameter: `null` and `undefined` are SQL NULL; a Uint8Array is sent as `bytea` hex. */
export type PgParam = string | number | bigint | boolean | null | undefined | Uint8Array | Date;

/** Decodes one text-format column value of type `typeOid`. */
export function decodePgText(typeOid: number, text: string): PgValue {
  switch (typeOid) {
    case PG_TYPE.bool:
      return text === "t";
    case PG_TYPE.int2:
    case PG_TYPE.int4:
    case PG_TYPE.oid:
      return Number(text);
    case PG_TYPE.int8: {
      const n = Number(text);
      return Number.isSafeInteger(n) ? n : BigInt(text);
    }
    case PG_TYPE.float4:
    case PG_TYPE.float8:
      return text === "NaN"
        ? NaN
        : text === "Infinity"
        ? Infinity
        : text === "-Infinity"
        ? -Infinity
        : Number(text);
    case PG_TYPE.bytea:
      return decodeBytea(text);
    default:
      return text;
  }
}

/** `bytea` in hex output format (`\x0a0b`, the default since PostgreSQL 9.0). */
function decodeBytea(text: string): Uint8Array {
  if (!text.startsWith("\\x") || text.length % 2 !== 0) {
    // The legacy escape format: only with bytea_output=escape, which this client never sets.
    throw new Error(`bytea value is not in hex format (set bytea_output to 'hex')`);
  }
  const out = new Uint8Array((text.length - 2) / 2);
  for (let i = 0; i < out.length; i++) {
    const byte = parseInt(text.slice(2 + 2 * i, 4 + 2 * i), 16);
    if (Number.isNaN(byte)) throw new Error("bytea value has a non-hex digit");
    out[i] = byte;
  }
  return out;
}

/**
 * A parameter as text, or null for SQL NULL.
 *
 * @throws {TypeError} a value of another type (an object, a function, a symbol)
 */
export function encodePgParam(value: PgParam): string | null {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "string":
      return value;
    case "number":
      if (Number.isNaN(value)) return "NaN";
      if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
      return String(value);
    case "bigint":
      return value.toString();
    case "boolean":
      return value ? "true" : "false";
  }
  if (value instanceof Uint8Array) {
    return "\\x" + Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  if (value instanceof Date) return value.toISOString();
  throw new TypeError(
    `cannot send a ${typeof value} as a query parameter: pass a string, number, bigint, ` +
      "boolean, Uint8Array, Date or null",
  );
}
