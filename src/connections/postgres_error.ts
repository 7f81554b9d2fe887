/**
 * A PostgreSQL ErrorResponse raised as an exception, with its SQLSTATE.
 *
 * @module
 */

/** Fields of a server ErrorResponse (PostgreSQL docs §55.8, "Error and Notice Message Fields"). */
export interface PostgresErrorFields {
  /** `ERROR`, `FATAL` or `PANIC` (field `V`, else `S`). */
  readonly severity: string;
  /** The SQLSTATE code, e.g. `23505` for a unique violation (field `C`). */
  readonly code: string;
  /** The primary message (field `M`). */
  readonly message: string;
  /** Detail (field `D`), if any. */
  readonly detail?: string;
  /** Hint (field `H`), if any. */
  readonly hint?: string;
  /** 1-based character position in the query text (field `P`), if any. */
  readonly position?: number;
  /** Schema, table, column, constraint names (fields `s`, `t`, `c`, `n`), if any. */
  readonly schema?: string;
  readonly table?: string;
  readonly column?: string;
  readonly constraint?: string;
}

/**
 * The server refused a statement or the session (an ErrorResponse).
 *
 * @example
 * ```ts
 * try { await client.query("INSERT ...", [id]); }
 * catch (e) { if (e instanceof PostgresError && e.code === "23505") { ... } }
 * ```
 */
export class PostgresError extends Error {
  /** SQLSTATE, e.g. `42P01` (undefined table). */
  readonly code: string;
  /** `ERROR`, `FATAL` or `PANIC`. */
  readonly severity: string;
  /** All the fields the server sent. */
  readonly fields: PostgresErrorFields;

  constructor(fields: PostgresErrorFields, options?: ErrorOptions) {
    const extra = [
      fields.detail ? `detail: ${fields.detail}` : "",
      fields.hint ? `hint: ${fields.hint}` : "",
    ].filter((s) => s !== "").join("; ");
    super(
      `PostgreSQL ${fields.severity} ${fields.code}: ${fields.message}${
        extra ? ` (${extra})` : ""
      }`,
      options,
    );
    this.name = "PostgresError";
    this.code = fields.code;
    this.severity = fields.severity;
    this.fields = fields;
  }
}
