/**
 * The `db_exec` backend against a real PostgreSQL 15: a parsed Directive's queries answer the
 * JSON Suborbital's Reactr answered, and every misuse fails with a message naming the fix.
 */

import assert from "node:assert/strict";
import {
  connectionsFrom,
  countVariables,
  inferQueryType,
  PostgresClient,
  QueryRunner,
} from "../src/connections/mod.ts";
import { parseDirective } from "../src/directive/mod.ts";
import type { QueryVariable } from "../src/wasm/mod.ts";
import { PgServer, pgUnavailable, SCRAM_PASSWORD } from "./_pg_server.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const vars = (...values: string[]): QueryVariable[] =>
  values.map((value, i) => ({ name: `v${i}`, value }));

Deno.test("inferQueryType and countVariables follow Atmo's rules", async (t) => {
  await t.step("the type is the first word, any case, after whitespace", () => {
    assert.equal(inferQueryType("INSERT INTO t VALUES ($1)"), "insert");
    assert.equal(inferQueryType("  \n select 1"), "select");
    assert.equal(inferQueryType("Update t SET a = 1"), "update");
    assert.equal(inferQueryType("delete from t"), "delete");
    assert.equal(inferQueryType("WITH x AS (SELECT 1) SELECT * FROM x"), undefined);
  });
  await t.step("the variable count is the highest $n outside quotes and comments", () => {
    assert.equal(countVariables("SELECT * FROM t WHERE a = $1 AND b = $2"), 2);
    assert.equal(countVariables("SELECT * FROM t WHERE a = $1 OR b = $1"), 1);
    assert.equal(countVariables("SELECT $10"), 10);
    assert.equal(countVariables("SELECT '$3', \"$4\" -- $5\n, $1 /* $6 */"), 1);
    assert.equal(countVariables("SELECT $$ $7 $$, $tag$ $8 $tag$, $2"), 2);
    assert.equal(countVariables("SELECT 1"), 0);
  });
});

Deno.test("QueryRunner refuses queries it cannot type, and duplicate names, all at once", () => {
  const client = new PostgresClient("postgres://nobody@127.0.0.1:1/none");
  assert.throws(
    () =>
      new QueryRunner([
        { name: "a", query: "WITH x AS (SELECT 1) SELECT * FROM x" },
        { name: "b", query: "SELECT 1" },
        { name: "b", query: "SELECT 2" },
      ], client),
    (e: Error) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /queries\[0\] "a": cannot tell the query type .* add type: insert/);
      assert.match(e.message, /queries\[2\]: the name "b" is used twice; rename one/);
      return true;
    },
  );
});

Deno.test("connectionsFrom refuses what it cannot serve", async (t) => {
  await t.step("a mysql database", () => {
    assert.throws(
      () =>
        connectionsFrom({
          connections: { database: { type: "mysql", connectionString: "u@tcp(h)/d" } },
          queries: [],
        }),
      /connections.database.type "mysql" is not supported; .* use type: postgresql/,
    );
  });
  await t.step("an env(NAME) whose variable is not set", () => {
    assert.throws(
      () =>
        connectionsFrom(
          {
            connections: {
              database: { type: "postgresql", connectionString: "env(STRATOS_TEST_NO_SUCH_VAR)" },
            },
            queries: [],
          },
          { env: () => undefined },
        ),
      /connectionString: env\(STRATOS_TEST_NO_SUCH_VAR\) names an environment variable that is not set; export STRATOS_TEST_NO_SUCH_VAR/,
    );
  });
  await t.step("nothing declared gives no backends", async () => {
    const c = connectionsFrom({ connections: {}, queries: [] });
    assert.equal(c.cache, undefined);
    assert.equal(c.database, undefined);
    await c.check();
    await c.close();
  });
});

const unavailable = pgUnavailable();

const DIRECTIVE = `
identifier: com.suborbital.stratos-db
appVersion: v0.1.0
atmoVersion: v0.4.0

connections:
  database:
    type: postgresql
    connectionString: env(STRATOS_TEST_PG_URL)

queries:
  - name: PGInsertUser
    query: INSERT INTO users (uuid, email, created_at, state) VALUES ($1, $2, NOW(), 'A')
  - name: PGSelectUserWithUUID
    type: select
    varCount: 1
    query: |-
      SELECT * FROM users WHERE uuid = $1
  - name: PGUpdateUserState
    query: UPDATE users SET state = $1 WHERE email LIKE $2
  - name: PGDeleteUser
    query: DELETE FROM users WHERE uuid = $1
  - name: PGSelectTypes
    query: >-
      SELECT 1::int2 AS a_int2, 2147483647 AS b_int4, 9007199254740993::int8 AS c_int8,
      1.1::float4 AS d_float4, 0.1::float8 AS e_float8, 1e21::float8 AS f_big,
      1e-7::float8 AS g_small, 12.50::numeric AS h_numeric, true AS i_bool,
      '\\x00ff10'::bytea AS j_bytea, '2024-02-29'::date AS k_date,
      '2024-02-29 01:02:03.120'::timestamp AS l_ts,
      '2024-02-29 01:02:03+02'::timestamptz AS m_tstz, NULL::text AS n_null,
      '<b>&"q"</b>' || chr(8232) || chr(1) || chr(8) AS o_text, '{"k": 1}'::jsonb AS p_json,
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS q_uuid, 1 AS "Z", 2 AS "a"
  - name: PGSelectNaN
    query: SELECT 'NaN'::float8 AS x
  - name: PGSelectNothing
    query: SELECT 1 AS one WHERE false
  - name: PGSelectBroken
    query: SELECT * FROM no_such_table
  - name: PGSelectWrongCount
    varCount: 2
    query: SELECT $1::int

handlers:
  - type: request
    resource: /users
    method: POST
    steps:
      - fn: db-rs
`;

Deno.test({
  name: unavailable
    ? `QueryRunner against PostgreSQL 15 (skipped: ${unavailable})`
    : "QueryRunner against PostgreSQL 15",
  ignore: unavailable !== undefined,
  async fn(t) {
    const server = await PgServer.start();
    const directive = parseDirective(DIRECTIVE, { file: "Directive.yaml", runnables: ["db-rs"] });
    const connections = connectionsFrom(directive, {
      env: (name) =>
        name === "STRATOS_TEST_PG_URL" ? server.url("scram_user", SCRAM_PASSWORD) : undefined,
    });
    const db = connections.database!;
    try {
      await server.psql(
        `CREATE TABLE users (id serial PRIMARY KEY, uuid text UNIQUE, email text,
          created_at timestamptz, state char(1));
         ALTER TABLE users OWNER TO scram_user;`,
        "stratos",
      );

      await t.step("check() prepares every query and reports each bad one", async () => {
        await assert.rejects(connections.check(), (e: Error) => {
          assert.match(
            e.message,
            /query "PGSelectBroken": PostgreSQL ERROR 42P01: relation "no_such_table" does not exist/,
          );
          assert.match(
            e.message,
            /query "PGSelectWrongCount": varCount is 2 but the SQL takes 1 parameter\(s\)/,
          );
          assert.doesNotMatch(e.message, /PGInsertUser|PGSelectTypes/);
          return true;
        });
      });

      await t.step("insert answers Reactr's {lastInsertID, rowsAffected} with zeros", async () => {
        for (const [uuid, email] of [["u1", "ada@example.com"], ["u2", "bob@example.com"]]) {
          const out = await db.exec(0, "PGInsertUser", vars(uuid!, email!));
          assert.equal(text(out), '{"lastInsertID":0,"rowsAffected":0}');
        }
        const rows = await server.psql(
          "SELECT uuid || ' ' || email FROM users ORDER BY id",
          "stratos",
        );
        assert.equal(rows, "u1 ada@example.com\nu2 bob@example.com");
      });

      await t.step("select answers an array of row objects with sorted keys", async () => {
        const out = text(await db.exec(1, "PGSelectUserWithUUID", vars("u2")));
        const rows = JSON.parse(out);
        assert.equal(rows.length, 1);
        assert.deepEqual(Object.keys(rows[0]), ["created_at", "email", "id", "state", "uuid"]);
        assert.match(
          out,
          /^\[\{"created_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z","email":"bob@example\.com","id":2,"state":"A","uuid":"u2"\}\]$/,
        );
      });

      await t.step("select of no rows answers []", async () => {
        assert.equal(text(await db.exec(1, "PGSelectNothing", [])), "[]");
        assert.equal(text(await db.exec(1, "PGSelectUserWithUUID", vars("nobody"))), "[]");
      });

      await t.step("select encodes each type as Go's encoding/json did for pgx", async () => {
        const out = text(await db.exec(1, "PGSelectTypes", []));
        assert.equal(
          out,
          "[{" + [
            '"Z":1',
            '"a":2',
            '"a_int2":1',
            '"b_int4":2147483647',
            '"c_int8":9007199254740993',
            '"d_float4":1.100000023841858',
            '"e_float8":0.1',
            '"f_big":1e+21',
            '"g_small":1e-7',
            '"h_numeric":"12.50"',
            '"i_bool":true',
            '"j_bytea":"AP8Q"',
            '"k_date":"2024-02-29T00:00:00Z"',
            '"l_ts":"2024-02-29T01:02:03.12Z"',
            '"m_tstz":"2024-02-28T23:02:03Z"',
            '"n_null":null',
            '"o_text":"\\u003cb\\u003e\\u0026\\"q\\"\\u003c/b\\u003e\\u2028\\u0001\\u0008"',
            '"p_json":"{\\"k\\": 1}"',
            '"q_uuid":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"',
          ].join(",") + "}]",
        );
      });

      await t.step("update and delete answer rowsAffected", async () => {
        const upd = await db.exec(2, "PGUpdateUserState", vars("B", "%@example.com"));
        assert.equal(text(upd), '{"lastInsertID":0,"rowsAffected":2}');
        const del = await db.exec(3, "PGDeleteUser", vars("u1"));
        assert.equal(text(del), '{"lastInsertID":0,"rowsAffected":1}');
        const none = await db.exec(3, "PGDeleteUser", vars("u1"));
        assert.equal(text(none), '{"lastInsertID":0,"rowsAffected":0}');
      });

      await t.step("misuse fails with a message that names the fix", async () => {
        await assert.rejects(
          db.exec(1, "PGSelectUser", vars("u2")),
          /no query named "PGSelectUser" in the Directive's queries \(it has "PGInsertUser", /,
        );
        await assert.rejects(
          db.exec(0, "PGSelectUserWithUUID", vars("u2")),
          /query "PGSelectUserWithUUID" is a select query but was run as insert/,
        );
        await assert.rejects(
          db.exec(1, "PGSelectUserWithUUID", vars("u2", "extra")),
          /query "PGSelectUserWithUUID" takes 1 variable\(s\) but 2 were added/,
        );
        await assert.rejects(db.exec(4, "PGSelectUserWithUUID", vars("u2")), /query type 4 is not/);
        await assert.rejects(
          db.exec(1, "PGSelectNaN", []),
          /column "x" holds NaN, which JSON cannot represent/,
        );
      });

      await t.step("a database error reaches the runnable with its SQLSTATE", async () => {
        await assert.rejects(
          db.exec(0, "PGInsertUser", vars("u2", "dup@example.com")),
          /PostgreSQL ERROR 23505: duplicate key value violates unique constraint "users_uuid_key"/,
        );
      });

      await t.step("variables bind in the order they were added, names ignored", async () => {
        await db.exec(0, "PGInsertUser", [
          { name: "email", value: "u3" },
          { name: "uuid", value: "order@example.com" },
        ]);
        const out = JSON.parse(text(await db.exec(1, "PGSelectUserWithUUID", vars("u3"))));
        assert.equal(out[0].email, "order@example.com");
      });
    } finally {
      await connections.close();
      await server.dispose();
    }
  },
});
