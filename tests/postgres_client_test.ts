/**
 * The PostgreSQL client against a real PostgreSQL 15 (tests/_pg_server.ts): every
 * authentication method, parameters, type decoding, server errors, the pool, timeouts, size
 * limits, and sessions lost to a terminated backend or a restarted server.
 */

import assert from "node:assert/strict";
import {
  DatabaseConnectionError,
  parsePostgresConfig,
  PostgresClient,
  PostgresConnection,
  PostgresError,
} from "../src/connections/mod.ts";
// The SCRAM exchange is folder-private; its RFC 7677 vector is checked here directly.
import { ScramClient } from "../src/connections/_scram.ts";
import {
  CLEAR_PASSWORD,
  DATABASE,
  MD5_PASSWORD,
  PgServer,
  pgUnavailable,
  SCRAM_PASSWORD,
} from "./_pg_server.ts";

async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function rejects<T extends Error>(
  p: Promise<unknown>,
  type: new (...args: never[]) => T,
  check: (e: T) => void = () => {},
): Promise<T> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    check(e);
    return e;
  }
  assert.fail(`expected a ${type.name}`);
}

Deno.test("parsePostgresConfig reads URLs and keyword/value strings", async (t) => {
  await t.step("a URL with a %-encoded password, port, database and sslmode", () => {
    const c = parsePostgresConfig("postgres://app:p%40ss%3Aw@db.local:6543/shop?sslmode=require");
    assert.equal(c.user, "app");
    assert.equal(c.password, "p@ss:w");
    assert.equal(c.hostname, "db.local");
    assert.equal(c.port, 6543);
    assert.equal(c.database, "shop");
    assert.equal(c.sslMode, "require");
  });
  await t.step("defaults: localhost, 5432, database = user, plain TCP", () => {
    const c = parsePostgresConfig("postgresql://app@");
    assert.deepEqual([c.hostname, c.port, c.database, c.sslMode], [
      "localhost",
      5432,
      "app",
      "disable",
    ]);
  });
  await t.step("sslmode prefer and allow mean plain TCP", () => {
    assert.equal(parsePostgresConfig("postgres://a@h/d?sslmode=prefer").sslMode, "disable");
    assert.equal(parsePostgresConfig("postgres://a@h/d?sslmode=allow").sslMode, "disable");
  });
  await t.step("an IPv6 literal and a unix socket folder", () => {
    assert.equal(parsePostgresConfig("postgres://a@[::1]:5433/d").hostname, "::1");
    const s = parsePostgresConfig("postgres://a@/d?host=/run/postgresql&port=5433");
    assert.equal(s.socketPath, "/run/postgresql/.s.PGSQL.5433");
  });
  await t.step("keyword/value form with a quoted value", () => {
    const c = parsePostgresConfig(
      "host=127.0.0.1 port=5499 user=app password='it\\'s secret' dbname=x",
    );
    assert.deepEqual([c.hostname, c.port, c.user, c.password, c.database], [
      "127.0.0.1",
      5499,
      "app",
      "it's secret",
      "x",
    ]);
  });
  await t.step("connect_timeout and pool_max_conns", () => {
    const c = parsePostgresConfig("postgres://a@h/d?connect_timeout=3&pool_max_conns=9");
    assert.equal(c.connectTimeoutMs, 3000);
    assert.equal(c.poolMaxConns, 9);
  });
  await t.step("refuses unsupported options, no user, bad port, bad sslmode, several hosts", () => {
    assert.throws(
      () => parsePostgresConfig("postgres://a@h/d?target_session_attrs=any"),
      /unsupported option "target_session_attrs"; supported: host/,
    );
    assert.throws(() => parsePostgresConfig("postgres://h/d"), /no user/);
    assert.throws(() => parsePostgresConfig("postgres://a@h:99999/d"), /port "99999"/);
    assert.throws(() => parsePostgresConfig("postgres://a@h/d?sslmode=maybe"), /sslmode "maybe"/);
    assert.throws(() => parsePostgresConfig("postgres://a@h1,h2/d"), /several hosts/);
    assert.throws(() => parsePostgresConfig("   "), SyntaxError);
  });
  await t.step("never puts the password in an error message", () => {
    try {
      parsePostgresConfig("postgres://a:hunter2@h:0/d");
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(!String(e).includes("hunter2"));
    }
  });
});

Deno.test("connecting to a peer that never answers times out with a clear error", async () => {
  // A socket that accepts and stays silent: a hung server or a firewall black hole.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })();
  const db = new PostgresClient(`postgres://a@127.0.0.1:${listener.addr.port}/d`, {
    connectTimeoutMs: 200,
  });
  try {
    await rejects(db.query("SELECT 1"), DatabaseConnectionError, (e) => {
      assert.equal(e.stage, "timeout");
      assert.match(e.message, /took longer than 200 ms; check the address/);
    });
  } finally {
    await db.close();
    listener.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
  }
});

Deno.test("ScramClient follows RFC 7677's SCRAM-SHA-256 example", async (t) => {
  const serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
  const fresh = () =>
    new ScramClient("pencil", { username: "user", nonceForTesting: "rOprNGfwEbeRWgbNEkqO" });
  await t.step("client-first and client-final match the RFC", async () => {
    const scram = fresh();
    assert.equal(scram.clientFirst(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    assert.equal(
      await scram.clientFinal(serverFirst),
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    scram.verifyServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  });
  await t.step("a server signature with one flipped bit is refused", async () => {
    const scram = fresh();
    await scram.clientFinal(serverFirst);
    assert.throws(
      () => scram.verifyServerFinal("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
      /signature is wrong/,
    );
  });
  await t.step("a server nonce that does not extend the client's is refused", async () => {
    await assert.rejects(
      fresh().clientFinal("r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
      /nonce/,
    );
  });
  await t.step("an absurd iteration count is refused", async () => {
    await assert.rejects(
      fresh().clientFinal(serverFirst.replace("i=4096", "i=2000000000")),
      /iteration count/,
    );
  });
  await t.step("a server error e= is reported", () => {
    assert.throws(() => fresh().verifyServerFinal("e=invalid-proof"), /invalid-proof/);
  });
});

const unavailable = pgUnavailable();

Deno.test({
  name: unavailable
    ? `PostgresClient against PostgreSQL 15 (skipped: ${unavailable})`
    : "PostgresClient against PostgreSQL 15",
  ignore: unavailable !== undefined,
  async fn(t) {
    const server = await PgServer.start();
    try {
      await clientSteps(t, server);
    } finally {
      await server.dispose();
    }
  },
});

async function clientSteps(t: Deno.TestContext, server: PgServer): Promise<void> {
  await t.step("logs in with trust, SCRAM-SHA-256, MD5 and cleartext password", async () => {
    const logins: [string, string | undefined][] = [
      ["trust_user", undefined],
      ["scram_user", SCRAM_PASSWORD],
      ["md5_user", MD5_PASSWORD],
      ["clear_user", CLEAR_PASSWORD],
    ];
    for (const [user, password] of logins) {
      const db = new PostgresClient(server.url(user, password));
      try {
        const r = await db.query("SELECT current_user AS who, current_database() AS db");
        assert.deepEqual(r.rows, [[user, DATABASE]]);
      } finally {
        await db.close();
      }
    }
    // pg_hba.conf decides the method; make sure each role really has its own.
    const hba = await server.psql(
      "SELECT user_name[1] || ' ' || auth_method FROM pg_hba_file_rules WHERE type = 'host' " +
        "ORDER BY line_number",
    );
    assert.match(hba, /scram_user scram-sha-256/);
    assert.match(hba, /md5_user md5/);
    assert.match(hba, /clear_user password/);
    const stored = await server.psql(
      "SELECT rolname || ' ' || left(rolpassword, 3) FROM pg_authid " +
        "WHERE rolname IN ('scram_user', 'md5_user') ORDER BY rolname",
    );
    assert.equal(stored.trim(), "md5_user md5\nscram_user SCR");
  });

  await t.step(
    "a wrong password fails authentication with SQLSTATE 28P01 and no secret",
    async () => {
      for (const user of ["scram_user", "md5_user", "clear_user"]) {
        const db = new PostgresClient(server.url(user, "not-the-password"));
        try {
          const e = await rejects(db.query("SELECT 1"), DatabaseConnectionError, (e) => {
            assert.equal(e.stage, "authentication");
            assert.match(
              e.message,
              new RegExp(`password authentication failed for user "${user}"`),
            );
            assert.ok(!e.message.includes("not-the-password"));
          });
          assert.ok(e.cause instanceof PostgresError);
          assert.equal(e.cause.code, "28P01");
        } finally {
          await db.close();
        }
      }
    },
  );

  await t.step("a password the server asks for but was not given is named as the fix", async () => {
    const db = new PostgresClient(server.url("scram_user"));
    try {
      await rejects(db.query("SELECT 1"), DatabaseConnectionError, (e) => {
        assert.equal(e.stage, "authentication");
        assert.match(e.message, /asks for a password for user "scram_user"; add it/);
      });
    } finally {
      await db.close();
    }
  });

  await t.step("connects over the unix socket", async () => {
    // A unix socket needs net permission for "unix:PATH", which the test task does not grant
    // (--allow-net=127.0.0.1): a child Deno with all permissions runs the client instead.
    const url = `postgres://postgres@/${DATABASE}?host=${server.dir}&port=${server.port}`;
    const mod = new URL("../src/connections/mod.ts", import.meta.url).href;
    const code = `import { PostgresClient } from ${JSON.stringify(mod)};
      const db = new PostgresClient(${JSON.stringify(url)});
      const r = await db.query("SELECT current_user, $1::int + 1", [41]);
      await db.close();
      Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(r.rows)));`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assert.equal(text, '[["postgres",42]]');
  });

  await t.step(
    "sslmode=require against a server without TLS fails with a clear error",
    async () => {
      const db = new PostgresClient(server.url("trust_user", undefined, "sslmode=require"));
      try {
        await rejects(db.query("SELECT 1"), DatabaseConnectionError, (e) => {
          assert.equal(e.stage, "tls");
          assert.match(e.message, /does not accept TLS \(sslmode=require\)/);
        });
      } finally {
        await db.close();
      }
    },
  );

  await t.step("TLS: verify-full against a trusted CA, refused without it", async () => {
    const tlsServer = await PgServer.start({ tls: true });
    try {
      const verified = new PostgresClient(
        tlsServer.url(
          "scram_user",
          SCRAM_PASSWORD,
          `sslmode=verify-full&sslrootcert=${tlsServer.caFile}`,
        ),
      );
      try {
        const r = await verified.query(
          "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        );
        assert.equal(r.rows[0]?.[0], true);
        assert.match(String(r.rows[0]?.[1]), /^TLSv1\.[23]$/);
      } finally {
        await verified.close();
      }
      // Deno's TLS always verifies: a private CA must be named with sslrootcert.
      const unverified = new PostgresClient(
        tlsServer.url("trust_user", undefined, "sslmode=require"),
      );
      try {
        await rejects(unverified.query("SELECT 1"), DatabaseConnectionError, (e) => {
          assert.equal(e.stage, "tls");
          assert.match(e.message, /sslrootcert=FILE trusts a private CA/);
        });
      } finally {
        await unverified.close();
      }
    } finally {
      await tlsServer.dispose();
    }
  });

  await t.step("an unreachable server fails with a connect error naming the address", async () => {
    const db = new PostgresClient("postgres://trust_user@127.0.0.1:1/x");
    try {
      await rejects(db.query("SELECT 1"), DatabaseConnectionError, (e) => {
        assert.equal(e.stage, "connect");
        assert.match(e.message, /127\.0\.0\.1:1\/x/);
      });
    } finally {
      await db.close();
    }
  });

  const db = new PostgresClient(server.url("scram_user", SCRAM_PASSWORD));
  try {
    await t.step("binds text parameters $1..$n, NULL included", async () => {
      const r = await db.query(
        "SELECT $1::int AS a, $2::text AS b, $3::text IS NULL AS c, $4::bool AS d, " +
          "$5::int8 AS e, $6::bytea AS f, $7::float8 AS g, $8::timestamptz AS h",
        [
          7,
          "héllo 'quoted' \"x\"",
          null,
          true,
          9007199254740993n,
          Uint8Array.of(0, 255),
          0.5,
          new Date(0),
        ],
      );
      assert.deepEqual(r.rows, [[
        7,
        "héllo 'quoted' \"x\"",
        true,
        true,
        9007199254740993n,
        Uint8Array.of(0, 255),
        0.5,
        "1970-01-01 00:00:00+00",
      ]]);
      assert.deepEqual(r.columns.map((c) => c.name), ["a", "b", "c", "d", "e", "f", "g", "h"]);
    });

    await t.step("decodes common types by OID", async () => {
      const r = await db.query(
        "SELECT 1::int2, 2::int4, 3::int8, 1.5::float4, 'NaN'::float8, '-Infinity'::float8, " +
          "12.50::numeric, true, false, 'x'::varchar, '2024-02-29'::date, " +
          "'2024-02-29 01:02:03.5'::timestamp, '{\"a\": [1]}'::jsonb, " +
          "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, NULL::int, 4294967295::oid",
      );
      const [row] = r.rows;
      assert.ok(row);
      assert.deepEqual(row.slice(0, 4), [1, 2, 3, 1.5]);
      assert.ok(Number.isNaN(row[4]));
      assert.deepEqual(row.slice(5), [
        -Infinity,
        "12.50",
        true,
        false,
        "x",
        "2024-02-29",
        "2024-02-29 01:02:03.5",
        '{"a": [1]}',
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        null,
        4294967295,
      ]);
    });

    await t.step("reports CommandComplete row counts", async () => {
      await db.query("CREATE TABLE counts (id int PRIMARY KEY, name text)");
      const ins = await db.query(
        "INSERT INTO counts SELECT g, 'n' || g FROM generate_series(1, 5) g",
      );
      assert.deepEqual([ins.command, ins.rowCount], ["INSERT", 5]);
      const upd = await db.query("UPDATE counts SET name = $1 WHERE id > $2", ["x", 2]);
      assert.deepEqual([upd.command, upd.rowCount], ["UPDATE", 3]);
      const sel = await db.query("SELECT * FROM counts WHERE name = $1", ["x"]);
      assert.deepEqual([sel.command, sel.rowCount, sel.rows.length], ["SELECT", 3, 3]);
      const del = await db.query("DELETE FROM counts WHERE id <= $1", [4]);
      assert.deepEqual([del.command, del.rowCount], ["DELETE", 4]);
      const ddl = await db.query("DROP TABLE counts");
      assert.deepEqual([ddl.command, ddl.rowCount, ddl.rows], ["DROP", 0, []]);
    });

    await t.step("a server error carries its SQLSTATE and the session stays usable", async () => {
      const conn = await PostgresConnection.connect(
        parsePostgresConfig(server.url("trust_user")),
      );
      try {
        await conn.query("CREATE TEMP TABLE u (id int PRIMARY KEY)");
        await conn.query("INSERT INTO u VALUES ($1)", [1]);
        await rejects(conn.query("INSERT INTO u VALUES ($1)", [1]), PostgresError, (e) => {
          assert.equal(e.code, "23505");
          assert.equal(e.severity, "ERROR");
          assert.equal(e.fields.constraint, "u_pkey");
          assert.match(e.message, /^PostgreSQL ERROR 23505: duplicate key value/);
        });
        await rejects(conn.query("SELEC 1"), PostgresError, (e) => {
          assert.equal(e.code, "42601");
          assert.equal(e.fields.position, 1);
        });
        await rejects(conn.query("SELECT 1/$1::int", [0]), PostgresError, (e) => {
          assert.equal(e.code, "22012");
        });
        assert.deepEqual((await conn.query("SELECT count(*)::int FROM u")).rows, [[1]]);
        assert.equal(conn.closed, false);
      } finally {
        await conn.close();
      }
    });

    await t.step(
      "prepares each SQL text once per session and re-prepares a stale plan",
      async () => {
        const conn = await PostgresConnection.connect(
          parsePostgresConfig(server.url("trust_user")),
        );
        try {
          await conn.query("CREATE TEMP TABLE p (v int)");
          await conn.query("INSERT INTO p VALUES ($1)", [1]);
          for (let i = 0; i < 3; i++) await conn.query("SELECT * FROM p WHERE v = $1", [1]);
          const prepared = await conn.query(
            "SELECT count(*)::int FROM pg_prepared_statements WHERE statement LIKE 'SELECT * FROM p%'",
          );
          assert.deepEqual(prepared.rows, [[1]]);
          // The cached statement's result type changes: PostgreSQL answers 0A000 once.
          await conn.query("ALTER TABLE p ADD COLUMN w text DEFAULT 'w'");
          const after = await conn.query("SELECT * FROM p WHERE v = $1", [1]);
          assert.deepEqual(after.rows, [[1, "w"]]);
          const info = await conn.prepare("SELECT $1::int, $2::text");
          assert.equal(info.paramCount, 2);
          await assert.rejects(conn.query("SELECT $1::int, $2::text", [1]), RangeError);
          await rejects(conn.query("SELECT $1::int + $2::int", [1]), PostgresError, (e) => {
            assert.equal(e.code, "08P01"); // bind supplies 1 parameter, statement requires 2
          });
          assert.deepEqual((await conn.query("SELECT 5")).rows, [[5]]);
        } finally {
          await conn.close();
        }
      },
    );

    await t.step("the pool opens at most maxConnections sessions", async () => {
      const pool = new PostgresClient(server.url("trust_user"), { maxConnections: 2 });
      try {
        let peak = 0;
        const started = Date.now();
        const runs = Array.from({ length: 6 }, () => {
          const r = pool.query("SELECT pg_sleep(0.1)");
          peak = Math.max(peak, pool.stats.open);
          return r;
        });
        await Promise.all(runs);
        assert.ok(Date.now() - started >= 280, "6 sleeps of 100 ms on 2 sessions take ≥ 300 ms");
        assert.equal(peak, 2);
        assert.deepEqual(pool.stats, { open: 2, idle: 2, waiting: 0 });
        const pids = await pool.query(
          "SELECT count(*)::int FROM pg_stat_activity WHERE usename = 'trust_user'",
        );
        assert.deepEqual(pids.rows, [[2]]);
      } finally {
        await pool.close();
      }
    });

    await t.step("a caller waiting too long for a busy pool gets a clear error", async () => {
      const pool = new PostgresClient(server.url("trust_user"), {
        maxConnections: 1,
        acquireTimeoutMs: 100,
      });
      try {
        const slow = pool.query("SELECT pg_sleep(0.4)");
        await rejects(pool.query("SELECT 1"), DatabaseConnectionError, (e) => {
          assert.equal(e.stage, "timeout");
          assert.match(e.message, /all 1 PostgreSQL connections stayed busy for 100 ms; raise/);
        });
        await slow;
      } finally {
        await pool.close();
      }
    });

    await t.step("a statement past its timeout is cancelled and the pool recovers", async () => {
      const pool = new PostgresClient(server.url("trust_user"), { maxConnections: 1 });
      try {
        await rejects(
          pool.query("SELECT pg_sleep(30)", [], { timeoutMs: 200 }),
          DatabaseConnectionError,
          (e) => {
            assert.equal(e.stage, "timeout");
            assert.match(e.message, /longer than 200 ms/);
          },
        );
        assert.deepEqual((await pool.query("SELECT 1")).rows, [[1]]);
        // The cancel request (or the closed socket) stops the sleep on the server.
        const deadline = Date.now() + 5000;
        for (;;) {
          const left = await server.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' " +
              "AND state = 'active'",
          );
          if (left === "0") break;
          assert.ok(
            Date.now() < deadline,
            `the timed-out statement is still running: ${await server.psql(
              "SELECT pid, usename, state, query FROM pg_stat_activity",
            )}`,
          );
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        await pool.close();
      }
    });

    await t.step("a row longer than a read arrives whole, and small ones after it", async () => {
      const db = new PostgresClient(server.url("trust_user"));
      try {
        const { rows } = await db.query("SELECT repeat('ab', 150000), 7");
        assert.equal((rows[0]![0] as string).length, 300_000);
        assert.equal(rows[0]![0], "ab".repeat(150_000));
        assert.deepEqual((await db.query("SELECT 'ok'")).rows, [["ok"]]);
      } finally {
        await db.close();
      }
    });

    await t.step("messages and results beyond their bounds end the session", async () => {
      const small = new PostgresClient(server.url("trust_user"), { maxMessageBytes: 1024 });
      try {
        await rejects(small.query("SELECT repeat('x', 5000)"), DatabaseConnectionError, (e) => {
          assert.equal(e.stage, "protocol");
          assert.match(e.message, /exceeds maxMessageBytes \(1024\)/);
        });
        assert.deepEqual((await small.query("SELECT 'ok'")).rows, [["ok"]]);
      } finally {
        await small.close();
      }
      const capped = new PostgresClient(server.url("trust_user"), { maxResultBytes: 10_000 });
      try {
        await assert.rejects(
          capped.query("SELECT g FROM generate_series(1, 10000) g"),
          /exceeds maxResultBytes \(10000 bytes\); add a LIMIT/,
        );
        assert.deepEqual((await capped.query("SELECT 2")).rows, [[2]]);
      } finally {
        await capped.close();
      }
    });

    await t.step("an idle session ended by the server is noticed and replaced", async () => {
      const conn = await PostgresConnection.connect(
        parsePostgresConfig(server.url("trust_user", undefined, "application_name=victim")),
      );
      await server.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'",
      );
      await until(() => conn.closed, "the terminated session to be noticed");
      await rejects(conn.query("SELECT 1"), DatabaseConnectionError, (e) => {
        assert.equal(e.stage, "lost");
        assert.match(e.message, /terminating connection due to administrator command/);
      });
      await conn.close();

      const pool = new PostgresClient(
        server.url("trust_user", undefined, "application_name=pooled"),
      );
      try {
        assert.deepEqual((await pool.query("SELECT 1")).rows, [[1]]);
        await server.psql(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pooled'",
        );
        // Give the FATAL message a moment to reach the idle session's read loop.
        await new Promise((r) => setTimeout(r, 200));
        assert.deepEqual((await pool.query("SELECT 2")).rows, [[2]]);
      } finally {
        await pool.close();
      }
    });

    await t.step("a restarted server is reconnected to; while down, errors say so", async () => {
      assert.deepEqual((await db.query("SELECT 3")).rows, [[3]]);
      await server.stop();
      await rejects(db.query("SELECT 4"), DatabaseConnectionError, (e) => {
        assert.ok(e.stage === "connect" || e.stage === "lost", e.stage);
        assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${server.port}/${DATABASE}`));
      });
      await server.restart();
      assert.deepEqual((await db.query("SELECT 5")).rows, [[5]]);
    });
  } finally {
    await db.close();
  }
}
