/**
 * The Directive's connections end to end: a real PostgreSQL behind `db_exec` with the
 * Directive's `queries`, and a real Redis behind the cache, reached from a runnable the proxy
 * delivered to a sat through the relay. Connection strings come from `env(NAME)`, read by the
 * proxy.
 */
import assert from "node:assert/strict";
import { PgServer, pgUnavailable, SCRAM_PASSWORD } from "./_pg_server.ts";
import { DEFAULT_PASSWORD, RedisServer, redisUnavailable } from "./_redis_server.ts";
import { type Network, startNetwork, startSat, stopNetwork } from "./_network.ts";

const unavailable = pgUnavailable() ?? redisUnavailable();

function directive(redisAddress: string): string {
  return `identifier: com.example.connections
appVersion: v0.1.0
atmoVersion: v0.4.0
connections:
  database:
    type: postgresql
    connectionString: env(STRATOS_TEST_PG_URL)
  redis:
    serverAddress: ${redisAddress}
    password: env(STRATOS_TEST_REDIS_PASSWORD)
queries:
  - name: add_user
    query: INSERT INTO users (name, age) VALUES ($1, $2)
  - name: users_named
    query: SELECT name, age FROM users WHERE name = $1 ORDER BY age
  - name: birthday
    query: UPDATE users SET age = age + 1 WHERE name = $1
handlers:
  - type: request
    resource: /fn
    method: POST
    steps:
      - fn: hostfns-rs
`;
}

async function call(net: Network, ...lines: string[]) {
  const response = await fetch(`http://127.0.0.1:${net.httpPort}/fn`, {
    method: "POST",
    body: lines.join("\n"),
  });
  return { status: response.status, text: await response.text() };
}

Deno.test({
  name: "db_exec runs the Directive's queries on PostgreSQL; the cache lives in Redis",
  ignore: unavailable !== undefined,
  fn: async () => {
    const pg = await PgServer.start();
    const redis = await RedisServer.start();
    let net: Network | undefined;
    try {
      const url = pg.url("scram_user", SCRAM_PASSWORD);
      await pg.psql(
        "CREATE TABLE users (name text NOT NULL, age integer NOT NULL); " +
          "ALTER TABLE users OWNER TO scram_user",
        "stratos",
      );
      net = await startNetwork({
        directive: directive(redis.address),
        runnables: { "hostfns-rs": "runnables/hostfns-rs/hostfns-rs.wasm" },
        proxyEnv: {
          STRATOS_TEST_PG_URL: url,
          STRATOS_TEST_REDIS_PASSWORD: DEFAULT_PASSWORD,
        },
      });
      startSat(net, net.satCommand, { runnables: false });
      const deadline = Date.now() + 20_000;
      let first = await call(net, "db", "0", "add_user", "name=ada", "age=36");
      while (first.status === 503 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        first = await call(net, "db", "0", "add_user", "name=ada", "age=36");
      }
      assert.deepEqual(first, { status: 200, text: '{"lastInsertID":0,"rowsAffected":0}' });
      assert.equal((await call(net, "db", "0", "add_user", "name=ada", "age=12")).status, 200);
      assert.deepEqual(await call(net, "db", "2", "birthday", "name=ada"), {
        status: 200,
        text: '{"lastInsertID":0,"rowsAffected":2}',
      });
      assert.deepEqual(await call(net, "db", "1", "users_named", "name=ada"), {
        status: 200,
        text: '[{"age":13,"name":"ada"},{"age":37,"name":"ada"}]',
      });
      assert.equal(await pg.psql("SELECT count(*) FROM users", "stratos"), "2");
      // A query the Directive does not declare is refused by name.
      const unknown = await call(net, "db", "1", "drop_everything");
      assert.equal(unknown.status, 400);
      assert.match(unknown.text, /drop_everything/);

      // The cache is Redis: what a runnable stores is in the server.
      assert.deepEqual(await call(net, "cache_set", "greeting", "60", "hello"), {
        status: 200,
        text: "stored",
      });
      assert.equal((await redis.cli("GET", "greeting")).trim(), "hello");
      await redis.cli("SET", "from-outside", "redis says hi");
      assert.deepEqual(await call(net, "cache_get", "from-outside"), {
        status: 200,
        text: "redis says hi",
      });
    } finally {
      if (net) await stopNetwork(net);
      await redis.dispose();
      await pg.dispose();
    }
  },
});
