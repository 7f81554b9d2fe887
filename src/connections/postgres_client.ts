/**
 * A PostgreSQL client: a small pool of {@linkcode PostgresConnection} sessions, opened on
 * demand up to a maximum, reused while healthy, replaced when lost.
 *
 * A session the server ends while it sits idle (a restart, `pg_terminate_backend`, an idle
 * timeout) is noticed by its read loop and dropped, so the next statement opens a fresh one:
 * reconnecting needs nothing from the caller. A statement that was on the wire when its session
 * broke fails with a {@linkcode DatabaseConnectionError} and is not retried, since it may have
 * run.
 *
 * @module
 */

import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  PostgresConnection,
  type PostgresConnectionOptions,
  type QueryOptions,
  type QueryResult,
  type StatementInfo,
} from "./postgres_connection.ts";
import { parsePostgresConfig, type PostgresConfig } from "./postgres_config.ts";
import { DatabaseConnectionError } from "./database_connection_error.ts";
import type { PgParam } from "./pg_value.ts";

/** Default pool size. */
export const DEFAULT_MAX_CONNECTIONS = 4;

/** Options of a {@linkcode PostgresClient}. */
export interface PostgresClientOptions extends PostgresConnectionOptions {
  /** Most sessions open at once. Default: the connection string's `pool_max_conns`, else 4. */
  readonly maxConnections?: number;
  /** Default time limit of a statement, ms (30 s). */
  readonly queryTimeoutMs?: number;
  /** Longest wait for a free session when all are busy, ms. Default: the connect timeout. */
  readonly acquireTimeoutMs?: number;
}

/** Pool counters, for tests and metrics. */
export interface PostgresPoolStats {
  /** Sessions open or being opened. */
  readonly open: number;
  /** Open sessions not running a statement. */
  readonly idle: number;
  /** Callers waiting for a session. */
  readonly waiting: number;
}

interface Waiter {
  resolve(conn: PostgresConnection): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * A pooled PostgreSQL client.
 *
 * @example
 * ```ts
 * const db = new PostgresClient("postgres://app:secret@127.0.0.1:5432/app");
 * const { rows } = await db.query("SELECT name FROM users WHERE id = $1", [7]);
 * await db.close();
 * ```
 */
export class PostgresClient {
  readonly #config: PostgresConfig;
  readonly #options: PostgresConnectionOptions;
  readonly #max: number;
  readonly #queryTimeoutMs: number | undefined;
  readonly #acquireTimeoutMs: number;
  readonly #idle: PostgresConnection[] = [];
  readonly #all = new Set<PostgresConnection>();
  readonly #waiters: Waiter[] = [];
  #opening = 0;
  #closed = false;

  /**
   * @param target a connection string (see {@linkcode parsePostgresConfig}) or a parsed config
   * @param options pool size, timeouts, size limits
   * @throws {TypeError} a bad connection string or option
   */
  constructor(target: string | PostgresConfig, options: PostgresClientOptions = {}) {
    this.#config = typeof target === "string" ? parsePostgresConfig(target) : target;
    this.#max = options.maxConnections ?? this.#config.poolMaxConns ?? DEFAULT_MAX_CONNECTIONS;
    if (!Number.isInteger(this.#max) || this.#max < 1) {
      throw new TypeError(`maxConnections must be a positive integer, not ${this.#max}`);
    }
    this.#queryTimeoutMs = options.queryTimeoutMs;
    this.#acquireTimeoutMs = options.acquireTimeoutMs ?? options.connectTimeoutMs ??
      this.#config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#options = options;
  }

  /** The target this client connects to (the password included: do not log it). */
  get config(): PostgresConfig {
    return this.#config;
  }

  /** Current pool counters. */
  get stats(): PostgresPoolStats {
    return {
      open: this.#all.size + this.#opening,
      idle: this.#idle.length,
      waiting: this.#waiters.length,
    };
  }

  /**
   * Runs one statement on a pooled session.
   *
   * @param sql one SQL statement, parameters written `$1..$n`
   * @param params their values, in order
   * @returns rows, columns, the command and its row count
   * @throws {PostgresError} the server refused the statement (with its SQLSTATE `code`)
   * @throws {DatabaseConnectionError} no session could be had, or it broke or timed out
   * @example
   * ```ts
   * const r = await db.query("UPDATE users SET name = $1 WHERE id = $2", ["ada", 7]);
   * r.rowCount; // 1
   * ```
   */
  async query(
    sql: string,
    params: readonly PgParam[] = [],
    options: QueryOptions = {},
  ): Promise<QueryResult> {
    const conn = await this.#acquire();
    try {
      const timeoutMs = options.timeoutMs ?? this.#queryTimeoutMs;
      return await conn.query(sql, params, timeoutMs === undefined ? {} : { timeoutMs });
    } finally {
      this.#release(conn);
    }
  }

  /**
   * Has the server parse `sql` without running it (on one pooled session, which keeps it).
   *
   * @returns its parameter count and result columns
   * @throws {PostgresError} the server refused the SQL
   * @throws {DatabaseConnectionError} no session could be had, or it broke
   */
  async prepare(sql: string, options: QueryOptions = {}): Promise<StatementInfo> {
    const conn = await this.#acquire();
    try {
      const timeoutMs = options.timeoutMs ?? this.#queryTimeoutMs;
      return await conn.prepare(sql, timeoutMs === undefined ? {} : { timeoutMs });
    } finally {
      this.#release(conn);
    }
  }

  /** Closes every session and refuses new statements; waiting callers get an error. */
  async close(): Promise<void> {
    this.#closed = true;
    const error = new DatabaseConnectionError("closed", "the PostgreSQL client was closed");
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(error);
    }
    this.#idle.length = 0;
    await Promise.all([...this.#all].map((c) => c.close()));
    this.#all.clear();
  }

  #acquire(): Promise<PostgresConnection> {
    if (this.#closed) {
      return Promise.reject(
        new DatabaseConnectionError("closed", "the PostgreSQL client was closed"),
      );
    }
    const ready = this.#takeIdle();
    if (ready) return Promise.resolve(ready);
    if (this.#all.size + this.#opening < this.#max) return this.#open();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(
            new DatabaseConnectionError(
              "timeout",
              `all ${this.#max} PostgreSQL connections stayed busy for ` +
                `${this.#acquireTimeoutMs} ms; raise maxConnections (pool_max_conns) ` +
                "or look for slow statements",
            ),
          );
        }, this.#acquireTimeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  #takeIdle(): PostgresConnection | undefined {
    for (let conn = this.#idle.pop(); conn; conn = this.#idle.pop()) {
      if (!conn.closed) return conn;
      this.#all.delete(conn);
    }
    return undefined;
  }

  async #open(): Promise<PostgresConnection> {
    this.#opening++;
    try {
      const conn = await PostgresConnection.connect(this.#config, this.#options);
      if (this.#closed) {
        await conn.close();
        throw new DatabaseConnectionError("closed", "the PostgreSQL client was closed");
      }
      this.#all.add(conn);
      return conn;
    } finally {
      this.#opening--;
    }
  }

  #release(conn: PostgresConnection): void {
    if (conn.closed || this.#closed) {
      this.#all.delete(conn);
      if (!this.#closed) conn.close().catch(() => {});
      this.#serveWaiter();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(conn);
    } else {
      this.#idle.push(conn);
    }
  }

  /** A session was dropped: a waiting caller may open its replacement. */
  #serveWaiter(): void {
    if (this.#waiters.length === 0 || this.#all.size + this.#opening >= this.#max) return;
    const waiter = this.#waiters.shift()!;
    clearTimeout(waiter.timer);
    this.#open().then(waiter.resolve, waiter.reject);
  }
}
