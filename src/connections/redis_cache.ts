/**
 * The cache behind the runnable ABI's `env.cache_set` / `env.cache_get` on Redis, as Reactr's
 * `rcap/cache_redis.go` did it: `GET key`, and `SET key value EX ttl` (a plain `SET` when the
 * TTL is 0 or less: no expiry).
 *
 * Also the parser of Atmo's `connections.redis.serverAddress`.
 *
 * @module
 */

import type { CacheBackend } from "../wasm/mod.ts";
import { DatabaseConnectionError } from "./database_connection_error.ts";
import { RedisClient, type RedisClientOptions } from "./redis_client.ts";

/** Where `serverAddress` points. */
export interface RedisAddress {
  readonly hostname: string;
  readonly port: number;
  /** From a `redis://user:password@` URL, if written there. */
  readonly username?: string;
  readonly password?: string;
  /** From a `redis://host/N` URL path, if written there. */
  readonly database?: number;
}

/**
 * Parses `serverAddress`: `host:port` as Atmo took it (go-redis's `Addr`), `host` alone (port
 * 6379), `[v6]:port`, or a `redis://[user[:password]@]host[:port][/db]` URL, which also selects a
 * database.
 *
 * @throws {TypeError} an unparseable address or `rediss://` (TLS is not supported)
 * @example
 * ```ts
 * parseRedisAddress("127.0.0.1:6379"); // { hostname: "127.0.0.1", port: 6379 }
 * parseRedisAddress("redis://cache:6380/2"); // { hostname: "cache", port: 6380, database: 2 }
 * ```
 */
export function parseRedisAddress(address: string): RedisAddress {
  if (address.startsWith("rediss://")) {
    throw new TypeError(
      `connections.redis.serverAddress "${redact(address)}": rediss:// (TLS) is not supported; ` +
        "use redis:// on a trusted network",
    );
  }
  let rest = address;
  const out: { -readonly [K in keyof RedisAddress]?: RedisAddress[K] } = {};
  if (rest.startsWith("redis://")) {
    rest = rest.slice("redis://".length);
    const at = rest.lastIndexOf("@");
    if (at >= 0) {
      const userinfo = rest.slice(0, at);
      rest = rest.slice(at + 1);
      const colon = userinfo.indexOf(":");
      const user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
      if (colon >= 0) out.password = decodeURIComponent(userinfo.slice(colon + 1));
      if (user) out.username = user;
    }
    const slash = rest.indexOf("/");
    if (slash >= 0) {
      const db = rest.slice(slash + 1);
      rest = rest.slice(0, slash);
      if (db !== "") {
        if (!/^\d+$/.test(db)) {
          throw new TypeError(
            `connections.redis.serverAddress "${
              redact(address)
            }": database "${db}" is not a number`,
          );
        }
        out.database = Number(db);
      }
    }
  }
  const m = /^(\[[^\]]+\]|[^:\/\[\]]+)(?::(\d+))?$/.exec(rest);
  if (!m) {
    throw new TypeError(
      `connections.redis.serverAddress "${redact(address)}" is not host:port ` +
        '(like "localhost:6379") or redis://host:port/db',
    );
  }
  const port = m[2] === undefined ? 6379 : Number(m[2]);
  if (port < 1 || port > 65535) {
    throw new TypeError(`connections.redis.serverAddress: port ${port} is not in 1..65535`);
  }
  return { hostname: m[1]!.replace(/^\[(.*)\]$/, "$1"), port, ...out };
}

/** The address with any password masked, for messages. */
function redact(address: string): string {
  return address.replace(/^(redis[s]?:\/\/[^:@\/]*:)[^@]*@/, "$1***@");
}

/** Options of {@linkcode RedisCache.connect}. */
export type RedisCacheOptions = Omit<RedisClientOptions, "hostname" | "port" | "database">;

/**
 * A {@linkcode CacheBackend} on Redis.
 *
 * @example
 * ```ts
 * const cache = RedisCache.connect("127.0.0.1:6379", { password: "secret" });
 * await cache.set("k", new TextEncoder().encode("v"), 60);
 * await cache.get("k"); // Uint8Array "v"
 * await cache.close();
 * ```
 */
export class RedisCache implements CacheBackend {
  readonly #client: RedisClient;

  /** @param client the Redis connection to use (the cache closes it in {@linkcode close}) */
  constructor(client: RedisClient) {
    this.#client = client;
  }

  /**
   * A cache on the server at `serverAddress` (see {@linkcode parseRedisAddress}); `username`
   * and `password` in `options` win over those in a URL. Connects on first use.
   *
   * @throws {TypeError} a bad address
   */
  static connect(serverAddress: string, options: RedisCacheOptions = {}): RedisCache {
    const a = parseRedisAddress(serverAddress);
    const username = options.username ?? a.username;
    const password = options.password ?? a.password;
    return new RedisCache(
      new RedisClient({
        ...options,
        hostname: a.hostname,
        port: a.port,
        ...(a.database !== undefined ? { database: a.database } : {}),
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { password } : {}),
      }),
    );
  }

  /** The underlying client, for other commands. */
  get client(): RedisClient {
    return this.#client;
  }

  /**
   * `GET key`.
   *
   * @returns the value, or undefined when there is none or it expired
   * @throws {Error} Redis is unreachable or refused (the message says why)
   */
  async get(key: string): Promise<Uint8Array | undefined> {
    const value = await this.#retry(["GET", key]);
    if (value === null) return undefined;
    if (!(value instanceof Uint8Array)) {
      throw new Error(`Redis answered GET "${key}" with something other than a string`);
    }
    return value;
  }

  /**
   * `SET key value EX ttl`, or `SET key value` when `ttlSeconds` ≤ 0 (no expiry). A fractional
   * TTL is sent in milliseconds (`PX`).
   *
   * @throws {Error} Redis is unreachable or refused (the message says why)
   */
  async set(key: string, value: Uint8Array, ttlSeconds: number): Promise<void> {
    const args: (string | Uint8Array)[] = ["SET", key, value];
    if (ttlSeconds > 0) {
      if (Number.isInteger(ttlSeconds)) args.push("EX", String(ttlSeconds));
      else args.push("PX", String(Math.max(1, Math.round(ttlSeconds * 1000))));
    }
    await this.#retry(args);
  }

  /** Closes the connection. */
  close(): Promise<void> {
    return this.#client.close();
  }

  /**
   * GET and SET are idempotent, so a command that met a connection the server had just dropped
   * (a restart, `CLIENT KILL`, an idle timeout) is sent once more on a fresh connection.
   */
  async #retry(args: readonly (string | Uint8Array)[]) {
    try {
      return await this.#client.command(args);
    } catch (e) {
      if (!(e instanceof DatabaseConnectionError) || e.stage !== "lost") throw e;
      return await this.#client.command(args);
    }
  }
}
