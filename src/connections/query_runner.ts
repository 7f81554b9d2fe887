/**
 * The database behind the runnable ABI's `env.db_exec`: the Directive's named `queries` run on
 * PostgreSQL, answering exactly the JSON Suborbital's Reactr (`rcap/db.go`, Go `database/sql`
 * with pgx's stdlib driver) answered, so runnables that parsed it keep working:
 *
 * - select (type 1): an array of row objects, `[]` when there are none. Keys are column names,
 *   sorted (Go marshals a map); a repeated name keeps the last column. Values as pgx gave them
 *   to Go: `int2`/`int4`/`int8`/`oid` as integers (exact, even beyond 2^53), `float4`/`float8`
 *   as numbers (`float4` widened as Go widens a float32), `bool` as booleans, `bytea` as
 *   base64, `date`/`timestamp`/`timestamptz` as RFC 3339 strings in UTC
 *   (`2024-01-02T03:04:05.5Z`), NULL as null, every other type (numeric, text, uuid, json, ...)
 *   as its text.
 * - insert (type 0): `{"lastInsertID":0,"rowsAffected":0}`: PostgreSQL has no last insert id
 *   (pgx reports none) and Reactr set only that field for inserts. Use `RETURNING` in a select
 *   query to get generated values.
 * - update (2) and delete (3): `{"lastInsertID":0,"rowsAffected":N}`.
 *
 * Variables (`env.add_ffi_var`) bind to `$1..$n` in the order they were added; only their
 * values are used, as in Reactr.
 *
 * @module
 */

import type { DatabaseBackend, QueryVariable } from "../wasm/mod.ts";
import type { Query } from "../directive/mod.ts";
import { goBytes, goFloat, goObject, goString } from "./_go_json.ts";
import type { QueryOptions, QueryResult, StatementInfo } from "./postgres_connection.ts";
import { PG_TYPE, type PgParam, type PgValue } from "./pg_value.ts";

/** The ABI's query type numbers. */
export const QUERY_TYPES = ["insert", "select", "update", "delete"] as const;

/** A query kind: what `QUERY_TYPES[n]` names. */
export type QueryKind = typeof QUERY_TYPES[number];

/** What the runner needs of a database client ({@linkcode PostgresClient} has it). */
export interface QueryClient {
  /** Runs a statement. */
  query(sql: string, params?: readonly PgParam[], options?: QueryOptions): Promise<QueryResult>;
  /** Parses a statement without running it. */
  prepare(sql: string, options?: QueryOptions): Promise<StatementInfo>;
}

/** Options of a {@linkcode QueryRunner}. */
export interface QueryRunnerOptions {
  /** Time limit per query, ms; default: the client's. */
  readonly timeoutMs?: number;
}

/** A Directive query with its type and variable count settled. */
export interface ResolvedQuery {
  readonly name: string;
  readonly query: string;
  readonly type: QueryKind;
  readonly varCount: number;
}

const encoder = new TextEncoder();

/**
 * Runs a Directive's named queries for `db_exec`.
 *
 * @example
 * ```ts
 * const runner = new QueryRunner(directive.queries, new PostgresClient(url));
 * const json = await runner.exec(1, "PGSelectUserWithUUID", [{ name: "uuid", value: id }]);
 * ```
 */
export class QueryRunner implements DatabaseBackend {
  readonly #queries: ReadonlyMap<string, ResolvedQuery>;
  readonly #client: QueryClient;
  readonly #options: QueryOptions;

  /**
   * @param queries the Directive's `queries`
   * @param client the database
   * @throws {TypeError} a query whose type cannot be told from its SQL, or a duplicate name
   *   (every problem in one message)
   */
  constructor(queries: readonly Query[], client: QueryClient, options: QueryRunnerOptions = {}) {
    const problems: string[] = [];
    const resolved = new Map<string, ResolvedQuery>();
    queries.forEach((q, i) => {
      const type = q.type ?? inferQueryType(q.query);
      if (!type) {
        problems.push(
          `queries[${i}] "${q.name}": cannot tell the query type from its SQL ` +
            `(it does not start with INSERT, SELECT, UPDATE or DELETE); ` +
            "add type: insert, select, update or delete",
        );
        return;
      }
      if (resolved.has(q.name)) {
        problems.push(`queries[${i}]: the name "${q.name}" is used twice; rename one`);
        return;
      }
      resolved.set(q.name, {
        name: q.name,
        query: q.query,
        type,
        varCount: q.varCount ?? countVariables(q.query),
      });
    });
    if (problems.length > 0) throw new TypeError(problems.join("\n"));
    this.#queries = resolved;
    this.#client = client;
    this.#options = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
  }

  /** The queries, with inferred types and variable counts. */
  get queries(): readonly ResolvedQuery[] {
    return [...this.#queries.values()];
  }

  /**
   * Runs query `name` as the runnable asked.
   *
   * @param queryType 0 insert, 1 select, 2 update, 3 delete
   * @param name the query's name in the Directive
   * @param variables the job's variables, bound to `$1..$n` in order
   * @returns Reactr's JSON (see the module documentation)
   * @throws {Error} an unknown query, a type or variable-count mismatch (the message names the
   *   fix), or the database's error
   */
  async exec(
    queryType: number,
    name: string,
    variables: readonly QueryVariable[],
  ): Promise<Uint8Array> {
    const kind = QUERY_TYPES[queryType];
    if (kind === undefined) {
      throw new Error(
        `db_exec: query type ${queryType} is not one of 0 (insert), 1 (select), 2 (update), ` +
          "3 (delete)",
      );
    }
    const q = this.#queries.get(name);
    if (!q) {
      const known = [...this.#queries.keys()].map((k) => `"${k}"`).join(", ");
      throw new Error(
        `db_exec: no query named "${name}" in the Directive's queries` +
          (known ? ` (it has ${known})` : " (it has none)"),
      );
    }
    if (q.type !== kind) {
      throw new Error(
        `db_exec: query "${name}" is a ${q.type} query but was run as ${kind}; ` +
          `call it with the ${q.type} function of the SDK or change its type in the Directive`,
      );
    }
    if (variables.length !== q.varCount) {
      throw new Error(
        `db_exec: query "${name}" takes ${q.varCount} variable(s) but ${variables.length} ` +
          "were added; add one variable per $n, in order",
      );
    }
    const result = await this.#client.query(q.query, variables.map((v) => v.value), this.#options);
    if (kind === "select") return encoder.encode(selectJson(result));
    const affected = kind === "insert" ? 0 : result.rowCount;
    return encoder.encode(`{"lastInsertID":0,"rowsAffected":${affected}}`);
  }

  /**
   * Has the server parse every query, as Reactr prepared them all at start, so a typo in the
   * SQL or a wrong `varCount` shows up now rather than on the first request. Runs nothing.
   *
   * @throws {Error} every query the server refused or whose `varCount` is wrong, one per line
   */
  async check(): Promise<void> {
    const problems: string[] = [];
    for (const q of this.#queries.values()) {
      try {
        const info = await this.#client.prepare(q.query, this.#options);
        if (info.paramCount !== q.varCount) {
          problems.push(
            `query "${q.name}": varCount is ${q.varCount} but the SQL takes ` +
              `${info.paramCount} parameter(s); make them agree`,
          );
        }
      } catch (e) {
        problems.push(`query "${q.name}": ${(e as Error).message}`);
      }
    }
    if (problems.length > 0) throw new Error(problems.join("\n"));
  }
}

/** Atmo's rule, made case- and whitespace-tolerant: the statement's first word. */
export function inferQueryType(sql: string): QueryKind | undefined {
  const word = /^\s*([A-Za-z]+)/.exec(sql)?.[1]?.toLowerCase();
  return (QUERY_TYPES as readonly string[]).includes(word ?? "") ? word as QueryKind : undefined;
}

/**
 * The number of variables of a query without `varCount`: its highest `$n` outside string
 * literals, quoted identifiers and comments. (Atmo counted `$<digit>` occurrences; the two agree
 * whenever each `$n` appears once, the only case in which Atmo's count worked.)
 */
export function countVariables(sql: string): number {
  let max = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (c === "$") {
      const digits = /^\$(\d+)/.exec(sql.slice(i))?.[1];
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i))?.[0];
      if (digits) {
        max = Math.max(max, Number(digits));
        i += digits.length + 1;
      } else if (tag) {
        // A dollar-quoted string: skip to its closing tag.
        const end = sql.indexOf(tag, i + tag.length);
        i = end < 0 ? sql.length : end + tag.length;
      } else i++;
    } else i++;
  }
  return max;
}

/** A select result as Reactr's `json.Marshal([]map[string]interface{})` wrote it. */
function selectJson(result: QueryResult): string {
  const rows = result.rows.map((row) => {
    const fields = new Map<string, string>();
    result.columns.forEach((col, i) => {
      fields.set(col.name, valueJson(col.name, col.typeOid, row[i] ?? null));
    });
    return goObject(fields);
  });
  return `[${rows.join(",")}]`;
}

function valueJson(column: string, typeOid: number, value: PgValue): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return goBytes(value);
  if (typeof value === "number") {
    try {
      return goFloat(typeOid === PG_TYPE.float4 ? Math.fround(value) : value);
    } catch {
      throw new Error(
        `db_exec: column "${column}" holds ${value}, which JSON cannot represent ` +
          "(Reactr failed here too); filter it out or cast it to text in the query",
      );
    }
  }
  switch (typeOid) {
    case PG_TYPE.date:
    case PG_TYPE.timestamp:
    case PG_TYPE.timestamptz:
      return goString(rfc3339(value));
    default:
      return goString(value);
  }
}

/**
 * PostgreSQL's ISO output (the session has DateStyle ISO, TimeZone UTC) as Go's
 * `time.Time.MarshalJSON` writes it: RFC 3339 with trailing fractional zeros removed, in UTC.
 * `infinity` and BC dates stay as PostgreSQL wrote them.
 */
function rfc3339(text: string): string {
  const m =
    /^(\d{4})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d+))?)?(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?$/
      .exec(text);
  if (!m) return text;
  const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "", sign, oh = "0", om = "0", os = "0"] =
    m;
  const fraction = frac.replace(/0+$/, "");
  const offsetSeconds = sign ? (sign === "-" ? -1 : 1) * (+oh * 3600 + +om * 60 + +os) : 0;
  if (offsetSeconds === 0) {
    return `${y}-${mo}-${d}T${h}:${mi}:${s}${fraction ? `.${fraction}` : ""}Z`;
  }
  const utc = new Date(Date.UTC(+y!, +mo! - 1, +d!, +h, +mi, +s) - offsetSeconds * 1000);
  const iso = utc.toISOString().slice(0, 19);
  return `${iso}${fraction ? `.${fraction}` : ""}Z`;
}
