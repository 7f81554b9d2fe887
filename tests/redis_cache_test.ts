/**
 * The Redis cache and its RESP2 client against a real redis-server (tests/_redis_server.ts):
 * AUTH in each form, GET/SET with TTLs that really expire, pipelining, database selection,
 * reply bounds, timeouts, and reconnecting after a killed connection or a restarted server.
 */

import assert from "node:assert/strict";
import {
  connectionsFrom,
  DatabaseConnectionError,
  parseRedisAddress,
  RedisCache,
  RedisClient,
  RedisError,
} from "../src/connections/mod.ts";
import {
  ACL_USER,
  ALICE_PASSWORD,
  DEFAULT_PASSWORD,
  RedisServer,
  redisUnavailable,
} from "./_redis_server.ts";
import { concatBytes } from "../src/wire/mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);

async function eventually(check: () => Promise<boolean>, what: string, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A pass-through TCP proxy in front of the real server that counts the reads it makes from the
 * client: commands pipelined into one write arrive in one or a few reads.
 */
function countingProxy(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const stats = { clientReads: 0 };
  const pump = async (from: Deno.Conn, to: Deno.Conn, count: boolean) => {
    const buf = new Uint8Array(256 * 1024);
    try {
      for (let n = await from.read(buf); n !== null; n = await from.read(buf)) {
        if (count) stats.clientReads++;
        for (let at = 0; at < n;) at += await to.write(buf.subarray(at, n));
      }
    } catch {
      // One side closed.
    }
    try {
      to.close();
    } catch {
      // Closed already.
    }
  };
  const tasks: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const client of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(client, upstream);
      tasks.push(pump(client, upstream, true), pump(upstream, client, false));
    }
  })();
  return {
    port: listener.addr.port,
    stats,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Closed already.
        }
      }
      await Promise.all(tasks);
    },
  };
}

Deno.test("parseRedisAddress reads Atmo's serverAddress forms", async (t) => {
  await t.step("host:port, host alone, [v6]:port", () => {
    assert.deepEqual(parseRedisAddress("localhost:6380"), { hostname: "localhost", port: 6380 });
    assert.deepEqual(parseRedisAddress("cache"), { hostname: "cache", port: 6379 });
    assert.deepEqual(parseRedisAddress("[::1]:7000"), { hostname: "::1", port: 7000 });
  });
  await t.step("a redis:// URL with credentials and a database", () => {
    assert.deepEqual(parseRedisAddress("redis://bob:p%40ss@10.0.0.2:6390/4"), {
      hostname: "10.0.0.2",
      port: 6390,
      username: "bob",
      password: "p@ss",
      database: 4,
    });
    assert.deepEqual(parseRedisAddress("redis://:pw@h"), {
      hostname: "h",
      port: 6379,
      password: "pw",
    });
  });
  await t.step("refuses rediss://, junk and bad ports without echoing a password", () => {
    assert.throws(() => parseRedisAddress("rediss://u:topsecret@h:1"), (e: Error) => {
      assert.match(e.message, /rediss:\/\/ \(TLS\) is not supported/);
      assert.ok(!e.message.includes("topsecret"));
      return true;
    });
    assert.throws(() => parseRedisAddress("http://h:1"), /is not host:port/);
    assert.throws(() => parseRedisAddress("h:70000"), /port 70000/);
    assert.throws(() => parseRedisAddress("redis://h/x"), /database "x" is not a number/);
  });
  await t.step("a username without a password is refused", () => {
    assert.throws(
      () => new RedisClient({ hostname: "h", port: 1, username: "u" }),
      /username "u" needs a password/,
    );
  });
});

const unavailable = redisUnavailable();

Deno.test({
  name: unavailable
    ? `RedisCache against redis-server (skipped: ${unavailable})`
    : "RedisCache against redis-server",
  ignore: unavailable !== undefined,
  async fn(t) {
    const server = await RedisServer.start();
    try {
      await redisSteps(t, server);
    } finally {
      await server.dispose();
    }
  },
});

async function redisSteps(t: Deno.TestContext, server: RedisServer): Promise<void> {
  await t.step("AUTH with a password, with a username and password, and none", async () => {
    const plain = RedisCache.connect(server.address, { password: DEFAULT_PASSWORD });
    const acl = RedisCache.connect(server.address, {
      username: ACL_USER,
      password: ALICE_PASSWORD,
    });
    const none = RedisCache.connect(server.address);
    try {
      await plain.set("auth:plain", enc("p"), 0);
      await acl.set("auth:acl", enc("a"), 0);
      assert.equal(dec(await acl.get("auth:plain")), "p");
      assert.equal(dec(await acl.client.command(["ACL", "WHOAMI"]) as Uint8Array), ACL_USER);
      assert.equal(dec(await plain.get("auth:acl")), "a");
      await assert.rejects(none.get("auth:plain"), (e: Error) => {
        assert.ok(e instanceof RedisError);
        assert.equal(e.prefix, "NOAUTH");
        return true;
      });
    } finally {
      await Promise.all([plain.close(), acl.close(), none.close()]);
    }
  });

  await t.step("a wrong password fails as authentication, without the password", async () => {
    for (
      const options of [{ password: "wrong-one" }, { username: ACL_USER, password: "wrong-one" }]
    ) {
      const cache = RedisCache.connect(server.address, options);
      try {
        await assert.rejects(cache.get("x"), (e: Error) => {
          assert.ok(e instanceof DatabaseConnectionError);
          assert.equal(e.stage, "authentication");
          assert.match(
            e.message,
            /refused the session: Redis: WRONGPASS .*; check connections.redis.username and password/,
          );
          assert.ok(!e.message.includes("wrong-one"));
          return true;
        });
      } finally {
        await cache.close();
      }
    }
  });

  const cache = RedisCache.connect(server.address, { password: DEFAULT_PASSWORD });
  try {
    await t.step(
      "set then get round-trips every byte value; a missing key is undefined",
      async () => {
        const all = Uint8Array.from({ length: 256 }, (_, i) => i);
        await cache.set("bytes", all, 0);
        assert.deepEqual(await cache.get("bytes"), all);
        await cache.set("empty", new Uint8Array(0), 0);
        assert.deepEqual(await cache.get("empty"), new Uint8Array(0));
        assert.equal(await cache.get("never-set"), undefined);
      },
    );

    await t.step("values longer than a read arrive whole, and small ones after them", async () => {
      const big = crypto.getRandomValues(new Uint8Array(60_000));
      const huge = concatBytes([big, big, big, big, big]); // 300 KB: several reads
      await cache.set("huge", huge, 0);
      assert.deepEqual(await cache.get("huge"), huge);
      await cache.set("small", enc("after"), 0);
      assert.deepEqual(await cache.get("small"), enc("after"));
    });

    await t.step("a TTL ≤ 0 stores without expiry, a positive one with EX", async () => {
      await cache.set("forever", enc("x"), 0);
      assert.equal(await cache.client.command(["TTL", "forever"]), -1);
      await cache.set("forever2", enc("x"), -5);
      assert.equal(await cache.client.command(["TTL", "forever2"]), -1);
      await cache.set("hour", enc("x"), 3600);
      const ttl = await cache.client.command(["TTL", "hour"]);
      assert.ok(typeof ttl === "number" && ttl > 3590 && ttl <= 3600, String(ttl));
    });

    await t.step("a value with a 1-second TTL is gone after it", async () => {
      await cache.set("short", enc("soon gone"), 1);
      assert.equal(dec(await cache.get("short")), "soon gone");
      await new Promise((r) => setTimeout(r, 1100));
      await eventually(async () => (await cache.get("short")) === undefined, "expiry", 2000);
      // A fractional TTL goes out as PX milliseconds.
      await cache.set("shorter", enc("y"), 0.2);
      const pttl = await cache.client.command(["PTTL", "shorter"]);
      assert.ok(typeof pttl === "number" && pttl > 0 && pttl <= 200, String(pttl));
      await eventually(async () => (await cache.get("shorter")) === undefined, "expiry", 2000);
    });

    await t.step("overwriting a key replaces its value and TTL", async () => {
      await cache.set("k", enc("one"), 1);
      await cache.set("k", enc("two"), 0);
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(dec(await cache.get("k")), "two");
    });

    await t.step(
      "concurrent commands are pipelined into few writes, replies in order",
      async () => {
        const proxy = countingProxy(server.port);
        const piped = RedisCache.connect(`127.0.0.1:${proxy.port}`, { password: DEFAULT_PASSWORD });
        try {
          await piped.get("warm-up"); // connect + AUTH
          const before = proxy.stats.clientReads;
          const n = 300;
          await Promise.all(
            Array.from({ length: n }, (_, i) => piped.set(`pipe:${i}`, enc(`v${i}`), 60)),
          );
          const values = await Promise.all(
            Array.from({ length: n }, (_, i) => piped.get(`pipe:${i}`)),
          );
          assert.deepEqual(values.map(dec), Array.from({ length: n }, (_, i) => `v${i}`));
          const reads = proxy.stats.clientReads - before;
          assert.ok(reads <= 10, `${2 * n} commands arrived in ${reads} reads (not pipelined?)`);
        } finally {
          await piped.close();
          await proxy.close();
        }
      },
    );

    await t.step("a redis:// address selects its database", async () => {
      const db3 = RedisCache.connect(`redis://:${DEFAULT_PASSWORD}@${server.address}/3`);
      try {
        await db3.set("in-three", enc("3"), 0);
        assert.equal(await server.cli("-n", "3", "GET", "in-three"), "3");
        assert.equal(await cache.get("in-three"), undefined);
      } finally {
        await db3.close();
      }
    });

    await t.step("a reply larger than maxReplyBytes ends that connection only", async () => {
      await cache.set("big", new Uint8Array(5000), 0);
      const small = RedisCache.connect(server.address, {
        password: DEFAULT_PASSWORD,
        maxReplyBytes: 1000,
      });
      try {
        await assert.rejects(small.get("big"), (e: Error) => {
          assert.ok(e instanceof DatabaseConnectionError);
          assert.equal(e.stage, "protocol");
          assert.match(e.message, /a 5000-byte value exceeds the limit of 1000 bytes/);
          return true;
        });
        await small.set("fits", enc("ok"), 0);
        assert.equal(dec(await small.get("fits")), "ok");
      } finally {
        await small.close();
      }
    });

    await t.step("a command past its timeout fails, and the next one reconnects", async () => {
      const client = new RedisClient({
        hostname: "127.0.0.1",
        port: server.port,
        password: DEFAULT_PASSWORD,
        commandTimeoutMs: 200,
      });
      try {
        const blocked = client.command(["BLPOP", "nothing-here", "5"]);
        const behind = client.command(["PING"]);
        for (const p of [blocked, behind]) {
          await assert.rejects(p, (e: Error) => {
            assert.ok(e instanceof DatabaseConnectionError);
            assert.equal(e.stage, "timeout");
            assert.match(e.message, /did not answer within 200 ms/);
            return true;
          });
        }
        assert.equal(await client.command(["PING"]), "PONG");
      } finally {
        await client.close();
      }
    });

    await t.step("a connection the server killed is replaced transparently", async () => {
      await cache.set("survivor", enc("still here"), 0);
      const killed = await server.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
      assert.ok(Number(killed) >= 1, `killed ${killed}`);
      assert.equal(dec(await cache.get("survivor")), "still here");
    });

    await t.step("a restarted server is reconnected to; while down, errors say so", async () => {
      await server.stop();
      await assert.rejects(cache.get("survivor"), (e: Error) => {
        assert.ok(e instanceof DatabaseConnectionError);
        assert.equal(e.stage, "connect");
        assert.match(
          e.message,
          new RegExp(`cannot connect to Redis at 127\\.0\\.0\\.1:${server.port}`),
        );
        return true;
      });
      await server.restart();
      assert.equal(await cache.get("survivor"), undefined); // nothing is persisted
      await cache.set("after", enc("restart"), 0);
      assert.equal(dec(await cache.get("after")), "restart");
    });

    await t.step("connectionsFrom builds the cache from connections.redis with env()", async () => {
      const connections = connectionsFrom(
        {
          connections: {
            redis: { serverAddress: server.address, username: ACL_USER, password: "env(PW)" },
          },
          queries: [],
        },
        { env: (name) => name === "PW" ? ALICE_PASSWORD : undefined },
      );
      try {
        await connections.check();
        await connections.cache!.set("from-directive", enc("yes"), 0);
        assert.equal(dec(await cache.get("from-directive")), "yes");
      } finally {
        await connections.close();
      }
      const broken = connectionsFrom({
        connections: { redis: { serverAddress: server.address, password: "nope" } },
        queries: [],
      });
      try {
        await assert.rejects(broken.check(), /connections\.redis: Redis at .* refused the session/);
      } finally {
        await broken.close();
      }
    });
  } finally {
    await cache.close();
  }
}
