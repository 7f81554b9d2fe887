/**
 * One session with a PostgreSQL server over TCP, TLS or a unix socket, speaking protocol 3.0
 * (PostgreSQL docs chapter 55): startup, authentication (trust, cleartext password, MD5,
 * SCRAM-SHA-256), then statements through the extended query protocol with text-format
 * parameters and results, each SQL text prepared once per session under a name.
 *
 * A read loop runs for the life of the session, so a server that ends an idle session (a
 * restart, `pg_terminate_backend`) is noticed at once and the session is marked
 * {@linkcode PostgresConnection.closed}. Statements run one at a time, in call order.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  type BackendMessage,
  bindMessage,
  BodyReader,
  cancelRequest,
  closeMessage,
  describeMessage,
  executeMessage,
  type FieldDescription,
  parseDataRow,
  parseFields,
  parseMessage,
  parseParameterDescription,
  parseRowDescription,
  passwordMessage,
  ProtocolViolation,
  rowCountOf,
  saslInitialResponse,
  saslResponse,
  splitMessages,
  sslRequest,
  startupMessage,
  syncMessage,
  terminateMessage,
  utf8,
} from "./_pg_protocol.ts";
import { concatBytes } from "../wire/mod.ts";
import { saslText, ScramClient } from "./_scram.ts";
import { ReadBuffer } from "./_read_buffer.ts";
import type { PostgresConfig } from "./postgres_config.ts";
import { DatabaseConnectionError } from "./database_connection_error.ts";
import { PostgresError } from "./postgres_error.ts";
import { decodePgText, encodePgParam, type PgParam, type PgValue } from "./pg_value.ts";

/** Default bound on one protocol message (a row, an error): 16 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Default bound on the rows of one result, summed: 64 MiB. */
export const DEFAULT_MAX_RESULT_BYTES = 64 * 1024 * 1024;
/** Default time to connect and authenticate: 10 s. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Default time for one statement: 30 s. */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;
/** Prepared statements kept per session; the oldest is closed beyond this. */
export const MAX_PREPARED_STATEMENTS = 256;

/** SQLSTATEs after which a cached statement is re-prepared once: plan changed, gone. */
const REPREPARE_CODES = new Set(["0A000", "26000"]);

/** Limits of a {@linkcode PostgresConnection}. */
export interface PostgresConnectionOptions {
  /** Connect + authenticate timeout, ms. Default: the config's, else 10 s. */
  readonly connectTimeoutMs?: number;
  /** Largest message accepted from the server, bytes. Default 16 MiB. */
  readonly maxMessageBytes?: number;
  /** Largest result (its DataRow messages summed), bytes. Default 64 MiB. */
  readonly maxResultBytes?: number;
}

/** A column of a result. */
export interface ColumnInfo {
  /** The column's name (or alias). */
  readonly name: string;
  /** Its type OID (see `PG_TYPE`). */
  readonly typeOid: number;
}

/** What a statement returned. */
export interface QueryResult {
  /** The command tag's verb, e.g. `SELECT`, `INSERT`, `UPDATE` (empty for an empty query). */
  readonly command: string;
  /** Rows returned, inserted, updated or deleted, from the command tag (0 when it has none). */
  readonly rowCount: number;
  /** The result columns; empty for a statement that returns none. */
  readonly columns: readonly ColumnInfo[];
  /** The rows, each a value per column, decoded by type (see `PgValue`). */
  readonly rows: readonly (readonly PgValue[])[];
}

/** What the server says of a prepared statement. */
export interface StatementInfo {
  /** Parameters `$1..$n` it takes. */
  readonly paramCount: number;
  /** Columns it returns; empty for a statement that returns none. */
  readonly columns: readonly ColumnInfo[];
}

/** Options of one statement. */
export interface QueryOptions {
  /** Time limit, ms; on expiry the statement is cancelled and the session closed. Default 30 s. */
  readonly timeoutMs?: number;
}

interface PreparedStatement {
  readonly name: string;
  columns: FieldDescription[];
  paramCount: number;
}

type Transport = Deno.Conn;

/**
 * A single authenticated session. Usually reached through {@linkcode PostgresClient}'s pool.
 *
 * @example
 * ```ts
 * const conn = await PostgresConnection.connect(parsePostgresConfig("postgres://app@127.0.0.1/app"));
 * const { rows } = await conn.query("SELECT $1::int + 1 AS n", [41]); // [[42]]
 * await conn.close();
 * ```
 */
export class PostgresConnection {
  readonly #config: PostgresConfig;
  readonly #conn: Transport;
  readonly #maxMessageBytes: number;
  readonly #maxResultBytes: number;
  readonly #queue: BackendMessage[] = [];
  readonly #parameters = new Map<string, string>();
  readonly #statements = new Map<string, PreparedStatement>();
  #waiter: { resolve: () => void } | undefined;
  #failure: Error | undefined;
  #busy = false;
  #tail: Promise<unknown> = Promise.resolve();
  #statementSeq = 0;
  #processId = 0;
  #secretKey = 0;
  #reading: Promise<void> = Promise.resolve();

  private constructor(config: PostgresConfig, conn: Transport, options: PostgresConnectionOptions) {
    this.#config = config;
    this.#conn = conn;
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxResultBytes = options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
  }

  /**
   * Opens a session: connects, negotiates TLS when `config.sslMode` asks, authenticates.
   *
   * @throws {DatabaseConnectionError} `connect`, `tls`, `authentication` (the server's
   *   {@linkcode PostgresError} as `cause`), `timeout` or `protocol`
   */
  static async connect(
    config: PostgresConfig,
    options: PostgresConnectionOptions = {},
  ): Promise<PostgresConnection> {
    const timeoutMs = options.connectTimeoutMs ?? config.connectTimeoutMs ??
      DEFAULT_CONNECT_TIMEOUT_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let abandoned = false;
    let opened: PostgresConnection | undefined;
    const attempt = (async () => {
      const conn = await openTransport(config);
      if (abandoned) {
        conn.close();
        throw new DatabaseConnectionError("timeout", "abandoned");
      }
      opened = new PostgresConnection(config, conn, options);
      await opened.#startup();
      return opened;
    })();
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abandoned = true;
        const half = opened as PostgresConnection | undefined;
        if (half) half.#destroy(new DatabaseConnectionError("timeout", "connect timed out"));
        reject(
          new DatabaseConnectionError(
            "timeout",
            `connecting to ${describeTarget(config)} took longer than ${timeoutMs} ms; ` +
              "check the address and that the server is up (or raise connect_timeout)",
          ),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([attempt, timeout]);
    } catch (e) {
      attempt.catch(() => {});
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** True once the session is over (closed, lost, or failed); it cannot be used again. */
  get closed(): boolean {
    return this.#failure !== undefined;
  }

  /** The server process serving this session (for `pg_terminate_backend`, logs). */
  get processId(): number {
    return this.#processId;
  }

  /** Run-time parameters the server reported (`server_version`, `TimeZone`, ...). */
  get parameters(): ReadonlyMap<string, string> {
    return this.#parameters;
  }

  /**
   * Runs one statement with text-format parameters `$1..$n`.
   *
   * @param sql one SQL statement
   * @param params the values of `$1..$n`, in order
   * @returns the result
   * @throws {PostgresError} the server refused the statement (the session stays usable)
   * @throws {DatabaseConnectionError} the session broke or timed out (it is closed)
   * @throws {RangeError} the result exceeds `maxResultBytes` (the session is closed)
   */
  query(
    sql: string,
    params: readonly PgParam[] = [],
    options: QueryOptions = {},
  ): Promise<QueryResult> {
    const values = params.map(encodePgParam);
    const run = this.#tail.then(() => this.#timed(sql, values, options));
    this.#tail = run.catch(() => {});
    return run;
  }

  /**
   * Has the server parse `sql` (and keeps it prepared for later runs) without running it.
   *
   * @returns its parameter count and result columns
   * @throws {PostgresError} the server refused the SQL
   * @throws {DatabaseConnectionError} the session broke
   */
  prepare(sql: string, options: QueryOptions = {}): Promise<StatementInfo> {
    const run = this.#tail.then(() => this.#timed(sql, undefined, options));
    this.#tail = run.catch(() => {});
    return run.then(() => {
      const s = this.#statements.get(sql)!;
      return {
        paramCount: s.paramCount,
        columns: s.columns.map((c) => ({ name: c.name, typeOid: c.typeOid })),
      };
    });
  }

  /** Ends the session (Terminate, then close). Safe to call more than once. */
  async close(): Promise<void> {
    if (!this.#failure) {
      try {
        await this.#write(terminateMessage());
      } catch {
        // The server is gone already; closing is all that is left.
      }
      this.#destroy(new DatabaseConnectionError("closed", "the connection was closed"));
    }
    await this.#reading;
  }

  async #timed(sql: string, values: (string | null)[] | undefined, options: QueryOptions) {
    if (this.#failure) throw this.#failure;
    const timeoutMs = options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    const timer = setTimeout(() => {
      this.#cancel();
      this.#destroy(
        new DatabaseConnectionError(
          "timeout",
          `the statement took longer than ${timeoutMs} ms; it was cancelled`,
        ),
      );
    }, timeoutMs);
    this.#busy = true;
    const cached = this.#statements.has(sql);
    try {
      try {
        return await this.#execute(sql, values);
      } catch (e) {
        if (!cached || !(e instanceof PostgresError) || !REPREPARE_CODES.has(e.code)) throw e;
        // The cached plan went stale (a table changed type, DISCARD ALL): prepare afresh once.
        this.#statements.delete(sql);
        return await this.#execute(sql, values);
      }
    } finally {
      clearTimeout(timer);
      this.#busy = false;
    }
  }

  /** Runs `sql` with `values`, or only prepares it when `values` is undefined. */
  async #execute(sql: string, values: (string | null)[] | undefined): Promise<QueryResult> {
    let statement = this.#statements.get(sql);
    const fresh = statement === undefined;
    const out: Uint8Array[] = [];
    if (!statement) {
      if (this.#statements.size >= MAX_PREPARED_STATEMENTS) {
        const [oldSql, old] = this.#statements.entries().next().value!;
        this.#statements.delete(oldSql);
        out.push(closeMessage("S", old.name));
      }
      statement = { name: `stratos_${++this.#statementSeq}`, columns: [], paramCount: -1 };
      out.push(parseMessage(statement.name, sql), describeMessage("S", statement.name));
    } else if (values === undefined) {
      return { command: "", rowCount: 0, columns: [], rows: [] };
    } else if (statement.paramCount !== values.length) {
      throw new RangeError(
        `the statement has ${statement.paramCount} parameter(s) ($1..$${statement.paramCount}) ` +
          `but ${values.length} value(s) were given`,
      );
    }
    if (values) out.push(bindMessage(statement.name, values), executeMessage());
    out.push(syncMessage());
    await this.#write(concatBytes(out));

    let error: PostgresError | undefined;
    let command = "";
    let rowCount = 0;
    let resultBytes = 0;
    const rows: PgValue[][] = [];
    for (;;) {
      const msg = await this.#next();
      switch (msg.type) {
        case "1": // ParseComplete
          if (fresh) this.#statements.set(sql, statement);
          break;
        case "t": // ParameterDescription
          statement.paramCount = parseParameterDescription(msg.body).length;
          break;
        case "T": // RowDescription
          statement.columns = parseRowDescription(msg.body);
          break;
        case "n": // NoData
          statement.columns = [];
          break;
        case "2": // BindComplete
        case "3": // CloseComplete
        case "I": // EmptyQueryResponse
          break;
        case "D": {
          resultBytes += msg.body.length;
          if (resultBytes > this.#maxResultBytes) {
            const e = new RangeError(
              `the result exceeds maxResultBytes (${this.#maxResultBytes} bytes); ` +
                "add a LIMIT to the query or raise maxResultBytes",
            );
            this.#destroy(new DatabaseConnectionError("closed", e.message));
            throw e;
          }
          rows.push(this.#decodeRow(statement.columns, msg.body));
          break;
        }
        case "C": { // CommandComplete
          const tag = new BodyReader(msg.body).cstring();
          command = tag.split(" ")[0] ?? "";
          rowCount = rowCountOf(tag);
          break;
        }
        case "E":
          error = this.#serverError(msg.body);
          if (error.severity === "FATAL" || error.severity === "PANIC") {
            const lost = new DatabaseConnectionError(
              "lost",
              `${describeTarget(this.#config)} ended the session: ${error.message}`,
              { cause: error },
            );
            this.#destroy(lost);
            throw lost;
          }
          break;
        case "Z": // ReadyForQuery
          if (error) throw error;
          return {
            command,
            rowCount,
            columns: statement.columns.map((c) => ({ name: c.name, typeOid: c.typeOid })),
            rows,
          };
        default:
          this.#unexpected(msg);
      }
    }
  }

  #decodeRow(columns: readonly FieldDescription[], body: Uint8Array): PgValue[] {
    const raw = parseDataRow(body);
    if (raw.length !== columns.length) {
      throw this.#violation(`a row has ${raw.length} columns, the description ${columns.length}`);
    }
    return raw.map((bytes, i) =>
      bytes === null ? null : decodePgText(columns[i]!.typeOid, utf8(bytes))
    );
  }

  async #startup(): Promise<void> {
    this.#busy = true;
    this.#reading = this.#readLoop();
    const c = this.#config;
    await this.#write(startupMessage({
      user: c.user,
      database: c.database,
      application_name: c.applicationName,
      client_encoding: "UTF8",
      DateStyle: "ISO",
      TimeZone: "UTC",
      extra_float_digits: "3",
    }));
    let scram: ScramClient | undefined;
    for (;;) {
      const msg = await this.#next();
      switch (msg.type) {
        case "R":
          scram = await this.#authenticate(msg.body, scram);
          break;
        case "E": {
          const error = this.#serverError(msg.body);
          this.#destroy(new DatabaseConnectionError("closed", error.message));
          throw new DatabaseConnectionError(
            "authentication",
            `${describeTarget(c)} refused the session: ${error.message}`,
            { cause: error },
          );
        }
        case "K": {
          const r = new BodyReader(msg.body);
          this.#processId = r.int32();
          this.#secretKey = r.int32();
          break;
        }
        case "v": // NegotiateProtocolVersion: a minor version or options we did not ask for.
          break;
        case "Z":
          this.#busy = false;
          return;
        default:
          this.#unexpected(msg);
      }
    }
  }

  /** One Authentication* message (§55.7); returns the SCRAM exchange in progress, if any. */
  async #authenticate(body: Uint8Array, scram: ScramClient | undefined) {
    const r = new BodyReader(body);
    const kind = r.int32();
    const c = this.#config;
    const password = () => {
      if (c.password === undefined) {
        throw this.#authFailure(
          `the server asks for a password for user "${c.user}"; ` +
            "add it to the connection string (postgres://user:PASSWORD@host/db)",
        );
      }
      return c.password;
    };
    switch (kind) {
      case 0: // AuthenticationOk
        return undefined;
      case 3: // AuthenticationCleartextPassword
        await this.#write(passwordMessage(password()));
        return undefined;
      case 5: { // AuthenticationMD5Password: "md5" + md5(md5(password + user) + salt)
        const salt = r.bytes(4);
        const inner = createHash("md5").update(password() + c.user).digest("hex");
        const outer = createHash("md5").update(inner).update(salt).digest("hex");
        await this.#write(passwordMessage(`md5${outer}`));
        return undefined;
      }
      case 10: { // AuthenticationSASL: a list of mechanisms
        const mechanisms: string[] = [];
        for (let m = r.cstring(); m !== ""; m = r.cstring()) mechanisms.push(m);
        if (!mechanisms.includes("SCRAM-SHA-256")) {
          throw this.#authFailure(
            `the server offers SASL mechanisms ${mechanisms.join(", ")}, ` +
              "but this client speaks SCRAM-SHA-256 only",
          );
        }
        const client = new ScramClient(password());
        await this.#write(
          saslInitialResponse("SCRAM-SHA-256", new TextEncoder().encode(client.clientFirst())),
        );
        return client;
      }
      case 11: { // AuthenticationSASLContinue
        if (!scram) throw this.#violation("SASLContinue without a SASL exchange");
        let final: string;
        try {
          final = await scram.clientFinal(saslText(r.rest()));
        } catch (e) {
          throw this.#authFailure((e as Error).message);
        }
        await this.#write(saslResponse(new TextEncoder().encode(final)));
        return scram;
      }
      case 12: // AuthenticationSASLFinal
        if (!scram) throw this.#violation("SASLFinal without a SASL exchange");
        try {
          scram.verifyServerFinal(saslText(r.rest()));
        } catch (e) {
          throw this.#authFailure((e as Error).message);
        }
        return undefined;
      default:
        throw this.#authFailure(
          `the server asks for authentication method ${kind} (Kerberos, GSSAPI or SSPI), ` +
            "which this client does not support; use scram-sha-256, md5, password or trust " +
            "in pg_hba.conf",
        );
    }
  }

  #authFailure(message: string): DatabaseConnectionError {
    const e = new DatabaseConnectionError(
      "authentication",
      `authenticating to ${describeTarget(this.#config)} as "${this.#config.user}": ${message}`,
    );
    this.#destroy(e);
    return e;
  }

  #serverError(body: Uint8Array): PostgresError {
    const f = parseFields(body);
    const position = f.get("P");
    const optional = (key: string, name: string) => {
      const v = f.get(key);
      return v === undefined ? {} : { [name]: v };
    };
    return new PostgresError({
      severity: f.get("V") ?? f.get("S") ?? "ERROR",
      code: f.get("C") ?? "XX000",
      message: f.get("M") ?? "(no message)",
      ...optional("D", "detail"),
      ...optional("H", "hint"),
      ...(position !== undefined ? { position: Number(position) } : {}),
      ...optional("s", "schema"),
      ...optional("t", "table"),
      ...optional("c", "column"),
      ...optional("n", "constraint"),
    });
  }

  #unexpected(msg: BackendMessage): never {
    throw this.#violation(`unexpected message "${msg.type}"`);
  }

  #violation(message: string): DatabaseConnectionError {
    const e = new DatabaseConnectionError(
      "protocol",
      `${describeTarget(this.#config)}: ${new ProtocolViolation(message).message}`,
    );
    this.#destroy(e);
    return e;
  }

  /** The next message for the operation in progress. */
  async #next(): Promise<BackendMessage> {
    for (;;) {
      const msg = this.#queue.shift();
      if (msg) {
        // Asynchronous messages may come at any time (§55.2.7).
        if (msg.type === "S") {
          const r = new BodyReader(msg.body);
          this.#parameters.set(r.cstring(), r.cstring());
          continue;
        }
        if (msg.type === "N" || msg.type === "A") continue;
        return msg;
      }
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve) => this.#waiter = { resolve });
    }
  }

  async #readLoop(): Promise<void> {
    const received = new ReadBuffer();
    try {
      for (;;) {
        const n = await this.#conn.read(received.room());
        if (n === null) {
          this.#destroy(
            new DatabaseConnectionError(
              "lost",
              `${describeTarget(this.#config)} closed the connection`,
            ),
          );
          return;
        }
        received.filled(n);
        const bytes = received.bytes;
        const { messages, used } = splitMessages(bytes, bytes.length, this.#maxMessageBytes);
        received.consume(used);
        for (const m of messages) this.#deliver(m);
      }
    } catch (e) {
      if (this.#failure) return;
      this.#destroy(
        e instanceof ProtocolViolation
          ? new DatabaseConnectionError("protocol", `${describeTarget(this.#config)}: ${e.message}`)
          : new DatabaseConnectionError(
            "lost",
            `the connection to ${describeTarget(this.#config)} broke: ${(e as Error).message}`,
            { cause: e },
          ),
      );
    }
  }

  #deliver(msg: BackendMessage): void {
    if (!this.#busy && msg.type === "E") {
      // Idle: the server is ending the session (FATAL on shutdown or pg_terminate_backend).
      const error = this.#serverError(msg.body);
      this.#destroy(
        new DatabaseConnectionError(
          "lost",
          `${describeTarget(this.#config)} ended the session: ${error.message}`,
          { cause: error },
        ),
      );
      return;
    }
    this.#queue.push(msg);
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve();
  }

  #destroy(failure: Error): void {
    if (this.#failure) return;
    this.#failure = failure;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    this.#wake();
  }

  async #write(bytes: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure;
    try {
      for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
    } catch (e) {
      const failure = this.#failure ?? new DatabaseConnectionError(
        "lost",
        `writing to ${describeTarget(this.#config)} failed: ${(e as Error).message}`,
        { cause: e },
      );
      this.#destroy(failure);
      throw failure;
    }
  }

  /** Asks the server to cancel the running statement (§55.2.8), on a separate connection. */
  #cancel(): void {
    const { processId, secretKey } = { processId: this.#processId, secretKey: this.#secretKey };
    (async () => {
      const conn = await openTransport(this.#config);
      try {
        const msg = cancelRequest(processId, secretKey);
        for (let at = 0; at < msg.length;) at += await conn.write(msg.subarray(at));
      } finally {
        conn.close();
      }
    })().catch(() => {
      // Best effort: the session is closed anyway, which also ends the statement.
    });
  }
}

/** Connects the byte stream: TCP or unix socket, then TLS if the config asks (§55.2.10). */
async function openTransport(config: PostgresConfig): Promise<Transport> {
  let conn: Deno.TcpConn | Deno.UnixConn;
  try {
    conn = config.socketPath
      ? await Deno.connect({ transport: "unix", path: config.socketPath })
      : await Deno.connect({ hostname: config.hostname, port: config.port });
  } catch (e) {
    throw new DatabaseConnectionError(
      "connect",
      `cannot connect to PostgreSQL at ${describeTarget(config)}: ${(e as Error).message}; ` +
        "check the host, port and that the server is running",
      { cause: e },
    );
  }
  if (config.socketPath) return conn;
  const tcp = conn as Deno.TcpConn;
  tcp.setNoDelay(true);
  if (config.sslMode === "disable") return tcp;
  try {
    const req = sslRequest();
    for (let at = 0; at < req.length;) at += await tcp.write(req.subarray(at));
    const answer = new Uint8Array(1);
    const n = await tcp.read(answer);
    if (n !== 1 || (answer[0] !== 0x53 && answer[0] !== 0x4e)) {
      throw new DatabaseConnectionError("tls", "the server answered the SSL request oddly");
    }
    if (answer[0] === 0x4e) {
      throw new DatabaseConnectionError(
        "tls",
        `${describeTarget(config)} does not accept TLS (sslmode=${config.sslMode}); ` +
          "enable ssl on the server or use sslmode=disable on a trusted network",
      );
    }
    const caCerts = config.sslRootCert ? [await Deno.readTextFile(config.sslRootCert)] : undefined;
    const tls = await Deno.startTls(tcp, {
      hostname: config.hostname,
      ...(caCerts ? { caCerts } : {}),
    });
    try {
      // The handshake (and certificate verification) would otherwise wait for the first write.
      await tls.handshake();
    } catch (e) {
      try {
        tls.close();
      } catch {
        // Closed by the failed handshake.
      }
      throw e;
    }
    return tls;
  } catch (e) {
    try {
      tcp.close();
    } catch {
      // Already closed by a failed handshake.
    }
    if (e instanceof DatabaseConnectionError) throw e;
    throw new DatabaseConnectionError(
      "tls",
      `TLS with ${describeTarget(config)} failed: ${(e as Error).message}; ` +
        "check the server certificate (sslrootcert=FILE trusts a private CA)",
      { cause: e },
    );
  }
}

/** `host:port/db` or `socket/db` for messages; never the password. */
export function describeTarget(config: PostgresConfig): string {
  const where = config.socketPath ?? `${config.hostname}:${config.port}`;
  return `${where}/${config.database}`;
}
