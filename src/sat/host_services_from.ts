/**
 * The services a deployment's configuration asks for, made on the sat: the Redis cache of
 * `connections.redis` and the PostgreSQL `db_exec` backend of `connections.database` with its
 * `queries` (the proxy resolved `env(NAME)` values before sending them). Nothing connects until
 * a runnable first uses it.
 *
 * @module
 */

import { connectionsFrom } from "../connections/mod.ts";
import type { Connections } from "../directive/mod.ts";
import type { SatConfig } from "../invocation/mod.ts";
import type { HostServices } from "./deployed_runnables.ts";

/**
 * The cache and database of `config` (none when it names none).
 *
 * @throws TypeError for a database type other than postgresql
 */
export function hostServicesFrom(config: SatConfig): HostServices {
  if (!config.redis && !config.database) return {};
  const connections = connectionsFrom({
    connections: {
      ...(config.redis ? { redis: config.redis } : {}),
      ...(config.database ? { database: config.database as Connections["database"] } : {}),
    },
    queries: config.queries,
  }, {
    // Values arrive resolved: nothing here reads this sat's environment.
    env: () => undefined,
  });
  return {
    ...(connections.cache ? { cache: connections.cache } : {}),
    ...(connections.database ? { database: connections.database } : {}),
    close: () => connections.close(),
  };
}
