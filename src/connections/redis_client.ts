/**
 * A Redis client speaking RESP2 over one TCP connection, pipelined: commands issued together
 * leave in one write, and replies are matched to commands in order. The connection is opened on
 * first use, authenticated (`AUTH [username] password`) and switched to its database (`SELECT`)
 * before any command; when it breaks, the commands in flight fail and the next command opens a
 * new one.
 *
 * @module
 */

import {
  encodeCommand,
  readReply,
  RespErrorReply,
  type RespLimits,
  RespProtocolError,
  type RespValue,
} from "./_resp.ts";
import { concatBytes } from "../wire/mod.ts";
import { DatabaseConnectionError } from "./database_connection_error.ts";
import { ReadBuffer } from "./_read_buffer.ts";
import { RedisError } from "./redis_error.ts";

export { RespErrorReply, type RespValue } from "./_resp.ts";

/** Default connect (and AUTH/SELECT) timeout: 5 s. */
export const DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 5_000;
/** Default command timeout: 10 s. */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 10_000;
/** Default largest bulk reply: 64 MiB. */
export const DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024;
/** Default most elements in an array reply. */
export const DEFAULT_MAX_ARRAY_LENGTH = 1_000_000;

/** Where a Redis server is and how to log in. */
export interface RedisClientOptions {
  /** Host name or IP address. */
  readonly hostname: string;
  /** TCP port (6379 by convention). */
  readonly port: number;
  /** ACL user (Redis 6+); with `password`, `AUTH username password`. */
  readonly username?: string;
  /** Password; alone, `AUTH password` (the `default` user or `requirepass`). */
  readonly password?: string;
  /** Database number for `SELECT`; default 0 (no SELECT sent). */
  readonly database?: number;
  /** Connect + AUTH + SELECT timeout, ms. Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** Per-command timeout, ms; on expiry the connection is dropped. Default 10 s. */
  readonly commandTimeoutMs?: number;
  /** Largest bulk string accepted in a reply, bytes. Default 64 MiB. */
  readonly maxReplyBytes?: number;
  /** Most elements accepted in an array reply. Default 1,000,000. */
  readonly maxArrayLength?: number;
}

interface Pending {
  resolve(value: RespValue): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** One TCP connection and the commands waiting for its replies. */
class Session {
  readonly #conn: Deno.TcpConn;
  readonly #limits: RespLimits;
  readonly #where: string;
  readonly #pending: Pending[] = [];
  #outbox: Uint8Array[] = [];
  #flushScheduled = false;
  #writing: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  readonly reading: Promise<void>;

  constructor(conn: Deno.TcpConn, limits: RespLimits, where: string) {
    this.#conn = conn;
    this.#limits = limits;
    this.#where = where;
    this.reading = this.#readLoop();
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  send(args: readonly (string | Uint8Array)[], timeoutMs: number): Promise<RespValue> {
    if (this.#failure) return Promise.reject(this.#failure);
    const bytes = encodeCommand(args);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.destroy(
          new DatabaseConnectionError(
            "timeout",
            `Redis at ${this.#where} did not answer within ${timeoutMs} ms; ` +
              "the connection was dropped (commands in flight failed)",
          ),
        );
      }, timeoutMs);
      this.#pending.push({ resolve, reject, timer });
      this.#outbox.push(bytes);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // Everything sent in this turn of the event loop leaves in one write: pipelining.
        queueMicrotask(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    const parts = this.#outbox;
    this.#outbox = [];
    const bytes = concatBytes(parts);
    this.#writing = this.#writing.then(async () => {
      if (this.#failure) return;
      try {
        for (let i = 0; i < bytes.length;) i += await this.#conn.write(bytes.subarray(i));
      } catch (e) {
        this.destroy(
          new DatabaseConnectionError(
            "lost",
            `writing to Redis at ${this.#where} failed: ${(e as Error).message}`,
            { cause: e },
          ),
        );
      }
    });
  }

  async #readLoop(): Promise<void> {
    const received = new ReadBuffer();
    try {
      for (;;) {
        const n = await this.#conn.read(received.room());
        if (n === null) {
          this.destroy(
            new DatabaseConnectionError("lost", `Redis at ${this.#where} closed the connection`),
          );
          return;
        }
        received.filled(n);
        const bytes = received.bytes;
        let at = 0;
        for (;;) {
          const r = readReply(bytes, at, bytes.length, this.#limits);
          if (!r) break;
          at = r.next;
          this.#answer(r.value);
        }
        received.consume(at);
      }
    } catch (e) {
      this.destroy(
        e instanceof RespProtocolError
          ? new DatabaseConnectionError("protocol", `Redis at ${this.#where}: ${e.message}`)
          : new DatabaseConnectionError(
            "lost",
            `the connection to Redis at ${this.#where} broke: ${(e as Error).message}`,
            { cause: e },
          ),
      );
    }
  }

  #answer(value: RespValue): void {
    const p = this.#pending.shift();
    if (!p) throw new RespProtocolError("a reply arrived with no command waiting for it");
    clearTimeout(p.timer);
    if (value instanceof RespErrorReply) p.reject(new RedisError(value.message));
    else p.resolve(value);
  }

  destroy(failure: Error): void {
    if (this.#failure) return;
    this.#failure = failure;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    for (const p of this.#pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(failure);
    }
  }
}

/**
 * A pipelined RESP2 client that reconnects on demand.
 *
 * @example
 * ```ts
 * const redis = new RedisClient({ hostname: "127.0.0.1", port: 6379 });
 * await redis.command(["SET", "greeting", "hello", "EX", "60"]);
 * const value = await redis.command(["GET", "greeting"]); // Uint8Array "hello"
 * await redis.close();
 * ```
 */
export class RedisClient {
  readonly #options: RedisClientOptions;
  readonly #limits: RespLimits;
  #session: Session | undefined;
  #connecting: Promise<Session> | undefined;
  #closed = false;

  /**
   * @throws {TypeError} a bad port or database number
   */
  constructor(options: RedisClientOptions) {
    if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
      throw new TypeError(`Redis port must be in 1..65535, not ${options.port}`);
    }
    const db = options.database ?? 0;
    if (!Number.isInteger(db) || db < 0) {
      throw new TypeError(`Redis database must be a non-negative integer, not ${db}`);
    }
    if (options.username !== undefined && options.password === undefined) {
      throw new TypeError(
        `Redis username "${options.username}" needs a password (AUTH takes both); add one`,
      );
    }
    this.#options = options;
    this.#limits = {
      maxBulkBytes: options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
      maxArrayLength: options.maxArrayLength ?? DEFAULT_MAX_ARRAY_LENGTH,
    };
  }

  /** `host:port`, for messages. */
  get address(): string {
    return `${this.#options.hostname}:${this.#options.port}`;
  }

  /**
   * Sends one command and waits for its reply. Commands sent without awaiting each other are
   * pipelined.
   *
   * @param args the command and its arguments, e.g. `["GET", key]`
   * @returns the reply: simple string → string, integer → number (bigint beyond 2^53), bulk →
   *   Uint8Array, null bulk or array → null, array → array
   * @throws {RedisError} an error reply
   * @throws {DatabaseConnectionError} the server cannot be reached, refused AUTH/SELECT
   *   (`authentication`), broke the connection (`lost`), or timed out
   */
  async command(args: readonly (string | Uint8Array)[]): Promise<RespValue> {
    if (args.length === 0) throw new TypeError("a Redis command needs at least its name");
    const session = await this.#ready();
    return await session.send(
      args,
      this.#options.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
    );
  }

  /** Closes the connection; later commands fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const connecting = this.#connecting;
    if (connecting) await connecting.catch(() => {});
    const s = this.#session;
    this.#session = undefined;
    if (s) {
      s.destroy(new DatabaseConnectionError("closed", "the Redis client was closed"));
      await s.reading;
    }
  }

  async #ready(): Promise<Session> {
    if (this.#closed) throw new DatabaseConnectionError("closed", "the Redis client was closed");
    if (this.#session && !this.#session.failed) return this.#session;
    this.#connecting ??= this.#connect().finally(() => this.#connecting = undefined);
    return await this.#connecting;
  }

  async #connect(): Promise<Session> {
    const o = this.#options;
    const timeoutMs = o.connectTimeoutMs ?? DEFAULT_REDIS_CONNECT_TIMEOUT_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let session: Session | undefined;
    let abandoned = false;
    const attempt = (async () => {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect({ hostname: o.hostname, port: o.port });
      } catch (e) {
        throw new DatabaseConnectionError(
          "connect",
          `cannot connect to Redis at ${this.address}: ${(e as Error).message}; ` +
            "check connections.redis.serverAddress and that the server is running",
          { cause: e },
        );
      }
      if (abandoned) {
        conn.close();
        throw new DatabaseConnectionError("timeout", "abandoned");
      }
      conn.setNoDelay(true);
      session = new Session(conn, this.#limits, this.address);
      const s = session;
      const setup: Promise<RespValue>[] = [];
      const commandTimeout = o.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS;
      if (o.password !== undefined) {
        const auth = o.username !== undefined
          ? ["AUTH", o.username, o.password]
          : ["AUTH", o.password];
        setup.push(s.send(auth, commandTimeout));
      }
      if (o.database) setup.push(s.send(["SELECT", String(o.database)], commandTimeout));
      try {
        await Promise.all(setup);
      } catch (e) {
        s.destroy(new DatabaseConnectionError("closed", "setup failed"));
        await s.reading;
        if (!(e instanceof RedisError)) throw e;
        const which = e.prefix === "WRONGPASS" || /AUTH|password/i.test(e.message)
          ? "check connections.redis.username and password"
          : `check the database number ${o.database}`;
        throw new DatabaseConnectionError(
          "authentication",
          `Redis at ${this.address} refused the session: ${e.message}; ${which}`,
          { cause: e },
        );
      }
      return s;
    })();
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abandoned = true;
        session?.destroy(new DatabaseConnectionError("timeout", "connect timed out"));
        reject(
          new DatabaseConnectionError(
            "timeout",
            `connecting to Redis at ${this.address} took longer than ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
    });
    try {
      const s = await Promise.race([attempt, timeout]);
      if (this.#closed) {
        s.destroy(new DatabaseConnectionError("closed", "the Redis client was closed"));
        await s.reading;
        throw new DatabaseConnectionError("closed", "the Redis client was closed");
      }
      this.#session = s;
      return s;
    } catch (e) {
      attempt.catch(() => {});
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
}
