/**
 * Connections to services outside the sandbox that a Directive declares: the PostgreSQL
 * database behind `env.db_exec` and the Redis cache behind `env.cache_get` / `env.cache_set`.
 * Both clients are written here on Deno's sockets (no driver dependency): a PostgreSQL protocol
 * 3.0 client with a pool, and a pipelined RESP2 Redis client.
 *
 * ```ts
 * import { connectionsFrom } from "./connections/mod.ts";
 *
 * const connections = connectionsFrom(directive); // connections.redis, .database + queries
 * await connections.check(); // optional: connect and prepare every query now
 * // give connections.cache / connections.database to the runnable pool
 * await connections.close();
 * ```
 *
 * @module
 */

export {
  connectionsFrom,
  type ConnectionsFromOptions,
  type DirectiveConnections,
} from "./connections_from.ts";
export {
  DEFAULT_MAX_CONNECTIONS,
  PostgresClient,
  type PostgresClientOptions,
  type PostgresPoolStats,
} from "./postgres_client.ts";
export {
  type ColumnInfo,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_RESULT_BYTES,
  DEFAULT_QUERY_TIMEOUT_MS,
  PostgresConnection,
  type PostgresConnectionOptions,
  type QueryOptions,
  type QueryResult,
  type StatementInfo,
} from "./postgres_connection.ts";
export { parsePostgresConfig, type PostgresConfig, type SslMode } from "./postgres_config.ts";
export { PostgresError, type PostgresErrorFields } from "./postgres_error.ts";
export { type ConnectionFailure, DatabaseConnectionError } from "./database_connection_error.ts";
export { PG_TYPE, type PgParam, type PgValue } from "./pg_value.ts";
export {
  countVariables,
  inferQueryType,
  QUERY_TYPES,
  type QueryClient,
  type QueryKind,
  QueryRunner,
  type QueryRunnerOptions,
  type ResolvedQuery,
} from "./query_runner.ts";
export {
  DEFAULT_MAX_ARRAY_LENGTH,
  DEFAULT_MAX_REPLY_BYTES,
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_CONNECT_TIMEOUT_MS,
  RedisClient,
  type RedisClientOptions,
  RespErrorReply,
  type RespValue,
} from "./redis_client.ts";
export {
  parseRedisAddress,
  type RedisAddress,
  RedisCache,
  type RedisCacheOptions,
} from "./redis_cache.ts";
export { RedisError } from "./redis_error.ts";
