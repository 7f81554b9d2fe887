/**
 * Builds the host services a Directive's `connections` and `queries` call for: the Redis cache
 * (`connections.redis`) and the PostgreSQL query runner (`connections.database` + `queries`).
 * String values written `env(NAME)` are read from the environment, as Atmo did.
 *
 * @module
 */

import type { Directive } from "../directive/mod.ts";
import type { CacheBackend, DatabaseBackend } from "../wasm/mod.ts";
import { PostgresClient, type PostgresClientOptions } from "./postgres_client.ts";
import { QueryRunner } from "./query_runner.ts";
import { RedisCache, type RedisCacheOptions } from "./redis_cache.ts";

/** `Deno.env.get`, with a permission failure explained. */
function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (e) {
    throw new TypeError(
      `env(${name}) cannot be read: this process may not read environment variable ${name}; ` +
        `add it to the task's --allow-env list (--allow-env=...,${name})`,
      { cause: e },
    );
  }
}

/** Options of {@linkcode connectionsFrom}. */
export interface ConnectionsFromOptions {
  /** Reads an environment variable for `env(NAME)` values. Default `Deno.env.get`. */
  readonly env?: (name: string) => string | undefined;
  /** Pool size, timeouts and limits of the PostgreSQL client. */
  readonly postgres?: PostgresClientOptions;
  /** Timeouts and limits of the Redis client. */
  readonly redis?: Omit<RedisCacheOptions, "username" | "password">;
}

/** The backends of one Directive; connections open on first use. */
export interface DirectiveConnections {
  /** The Redis cache, when `connections.redis` is set. */
  readonly cache?: CacheBackend;
  /** The query runner, when `connections.database` is set. */
  readonly database?: DatabaseBackend;
  /**
   * Connects to each service now and has PostgreSQL parse every query (Reactr's start-up
   * checks), so a wrong address, password or SQL fails before the first request.
   *
   * @throws {Error} every problem found
   */
  check(): Promise<void>;
  /** Closes every connection. */
  close(): Promise<void>;
}

/**
 * The cache and database backends a Directive declares.
 *
 * @param directive a parsed Directive (its `connections` and `queries`)
 * @param options environment, timeouts, limits
 * @returns the backends (none connected yet) and `check` / `close`
 * @throws {TypeError} a `mysql` database (not supported), an `env(NAME)` whose variable is unset,
 *   a bad connection string or address, a query whose type cannot be inferred
 * @example
 * ```ts
 * const connections = connectionsFrom(directive);
 * await connections.check();
 * const pool = new RunnablePool(..., { cache: connections.cache, database: connections.database });
 * ```
 */
export function connectionsFrom(
  directive: Pick<Directive, "connections" | "queries">,
  options: ConnectionsFromOptions = {},
): DirectiveConnections {
  const env = options.env ?? readEnv;
  const resolve = (value: string, path: string): string => {
    const m = /^env\((.*)\)$/.exec(value);
    if (!m) return value;
    const v = env(m[1]!);
    if (v === undefined) {
      throw new TypeError(
        `${path}: env(${m[1]}) names an environment variable that is not set; export ${m[1]}`,
      );
    }
    return v;
  };
  const { redis, database } = directive.connections;

  let runner: QueryRunner | undefined;
  let postgres: PostgresClient | undefined;
  if (database) {
    if (database.type !== "postgresql") {
      throw new TypeError(
        `connections.database.type "${database.type}" is not supported; Stratos speaks ` +
          "PostgreSQL: use type: postgresql",
      );
    }
    postgres = new PostgresClient(
      resolve(database.connectionString, "connections.database.connectionString"),
      options.postgres,
    );
    runner = new QueryRunner(directive.queries, postgres);
  }

  let cache: RedisCache | undefined;
  if (redis) {
    const username = redis.username === undefined
      ? undefined
      : resolve(redis.username, "connections.redis.username");
    const password = redis.password === undefined
      ? undefined
      : resolve(redis.password, "connections.redis.password");
    cache = RedisCache.connect(resolve(redis.serverAddress, "connections.redis.serverAddress"), {
      ...options.redis,
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
    });
  }

  return {
    ...(cache ? { cache } : {}),
    ...(runner ? { database: runner } : {}),
    async check() {
      const problems: string[] = [];
      if (cache) {
        await cache.client.command(["PING"]).catch((e: Error) =>
          problems.push(`connections.redis: ${e.message}`)
        );
      }
      if (runner) {
        await runner.check().catch((e: Error) =>
          problems.push(`connections.database: ${e.message}`)
        );
      }
      if (problems.length > 0) throw new Error(problems.join("\n"));
    },
    async close() {
      await Promise.all([cache?.close(), postgres?.close()]);
    },
  };
}
