// The host functions graphql_query, request_set_field, get_static_file and db_exec, the async
// bridge to the pool's services and fetch authentication, in process: the runnables
// runnables/hostfns-rs and runnables/hostfns-as (built from source by runnables/build.sh) run
// one host call per job (see runnables/hostfns-rs/src/lib.rs for their commands).

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type CacheBackend,
  type DatabaseBackend,
  type QueryVariable,
  type RequestInfo,
  Runnable,
  RunnableCache,
  RunnablePool,
  type RunResult,
  StaticDir,
} from "../src/wasm/mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const repo = new URL("../", import.meta.url);
const LANGS = ["hostfns-rs", "hostfns-as"] as const;

function load(name: string, pool: RunnablePool): Promise<Runnable> {
  return Deno.readFile(new URL(`runnables/${name}/${name}.wasm`, repo)).then((bytes) =>
    Runnable.load(name, bytes, { pool })
  );
}

function command(runnable: Runnable, lines: string[], request?: RequestInfo): Promise<RunResult> {
  return runnable.run(encoder.encode(lines.join("\n")), request);
}

function output(result: RunResult): string {
  assert.ok(result.ok, `expected a result, got ${JSON.stringify(result)}`);
  return decoder.decode(result.output);
}

function failure(result: RunResult): { code: number; message: string } {
  assert.ok(!result.ok, `expected an error, got ${JSON.stringify(result)}`);
  return { code: result.code, message: result.message };
}

function request(): RequestInfo {
  return {
    method: "POST",
    url: "/users/7?verbose=yes",
    id: "req-1",
    body: encoder.encode('{"name":"Ada"}'),
    headers: { "x-trace": "abc" },
    params: { id: "7" },
    state: { greeting: encoder.encode("hi") },
  };
}

interface Seen {
  path: string;
  authorization: string | null;
  body: unknown;
}

/** A GraphQL endpoint over HTTP on loopback: answers by the query's first word. */
function graphqlServer(): { server: Deno.HttpServer<Deno.NetAddr>; origin: string; seen: Seen[] } {
  const seen: Seen[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const text = await req.text();
    const body = req.method === "POST" && text !== "" ? JSON.parse(text) : text;
    seen.push({ path: url.pathname, authorization: req.headers.get("authorization"), body });
    if (url.pathname === "/echo") return new Response(req.headers.get("authorization") ?? "none");
    if (url.pathname === "/away") {
      return new Response(null, {
        status: 302,
        headers: { location: url.searchParams.get("to")! },
      });
    }
    if (url.pathname === "/down") return new Response("maintenance", { status: 503 });
    if (url.pathname === "/text") return new Response("not json");
    const query = String((body as { query?: unknown }).query ?? "");
    if (query.startsWith("fail")) {
      return Response.json({
        data: null,
        errors: [{ message: "no such field", path: ["user", "age"] }, { message: "second" }],
      });
    }
    return Response.json({
      data: { query, variables: (body as { variables: unknown }).variables },
    });
  });
  return { server, origin: `http://127.0.0.1:${server.addr.port}`, seen };
}

for (const lang of LANGS) {
  Deno.test(`${lang}: graphql_query posts the query and the variables, answers data or errors`, async (t) => {
    const { server, origin, seen } = graphqlServer();
    const host = new URL(origin).host;
    try {
      using pool = new RunnablePool({
        allowedHosts: [host],
        authHeaders: { [host]: "Bearer graph-token" },
      });
      using runnable = await load(lang, pool);

      await t.step(
        "the data as JSON; variables in order, the Authorization of the host",
        async () => {
          const result = await command(runnable, [
            "graphql",
            `${origin}/graphql`,
            "query Q($id: ID) { user(id: $id) { name } }",
            "id=7",
            "name=Ada",
          ]);
          assert.deepEqual(JSON.parse(output(result)), {
            query: "query Q($id: ID) { user(id: $id) { name } }",
            variables: { id: "7", name: "Ada" },
          });
          assert.deepEqual(seen.pop(), {
            path: "/graphql",
            authorization: "Bearer graph-token",
            body: {
              query: "query Q($id: ID) { user(id: $id) { name } }",
              variables: { id: "7", name: "Ada" },
            },
          });
        },
      );

      await t.step("a query uses its variables up: the next one has none", async () => {
        const result = await command(runnable, ["graphql", `${origin}/graphql`, "{ again }"]);
        assert.deepEqual(JSON.parse(output(result)).variables, {});
        seen.pop();
      });

      await t.step("GraphQL errors are the call's error, with their paths", async () => {
        assert.deepEqual(failure(await command(runnable, ["graphql", `${origin}/q`, "fail"])), {
          code: 400,
          message: "GraphQL error: no such field (path user.age); second",
        });
      });

      await t.step("a non-2xx answer, or one that is not JSON, is an error", async () => {
        assert.deepEqual(failure(await command(runnable, ["graphql", `${origin}/down`, "{ x }"])), {
          code: 400,
          message: "503: maintenance",
        });
        const text = failure(await command(runnable, ["graphql", `${origin}/text`, "{ x }"]));
        assert.match(text.message, /answered something other than JSON/);
        seen.splice(0);
      });

      await t.step("an endpoint outside allowedHosts is refused before any request", async () => {
        using closed = await Runnable.load(
          `${lang}-closed`,
          await Deno.readFile(new URL(`runnables/${lang}/${lang}.wasm`, repo)),
          { pool, allowedHosts: [] },
        );
        const refused = failure(await command(closed, ["graphql", `${origin}/graphql`, "{ x }"]));
        assert.match(refused.message, /^host "127\.0\.0\.1:\d+" is not in allowedHosts/);
        assert.deepEqual(seen, []);
      });
    } finally {
      await server.shutdown();
    }
  });
}

Deno.test("fetch_url sends the Authorization configured for the host, and only to that host", async (t) => {
  const { server, origin, seen } = graphqlServer();
  const other = graphqlServer();
  const host = new URL(origin).host;
  const otherHost = new URL(other.origin).host;
  try {
    using pool = new RunnablePool({
      allowedHosts: [host, otherHost],
      authHeaders: { [otherHost]: "Token other", "127.0.0.1": "Basic b64" },
    });
    using runnable = await load("hostfns-rs", pool);
    await t.step("the host's entry is sent (host:port first, then the name alone)", async () => {
      assert.equal(
        output(await command(runnable, ["fetch", "0", `${origin}/echo`, ""])),
        "Basic b64",
      );
    });
    await t.step("it replaces an Authorization the runnable set in the URL", async () => {
      const mine = `${origin}/echo::Authorization:mine`;
      assert.equal(output(await command(runnable, ["fetch", "0", mine, ""])), "Basic b64");
    });
    await t.step("after a redirect, each host gets its own entry", async () => {
      const away = `${origin}/away?to=${other.origin}/echo`;
      assert.equal(output(await command(runnable, ["fetch", "0", away, ""])), "Token other");
    });
    await t.step("without an entry, none", async () => {
      using plain = await Runnable.load(
        "plain",
        await Deno.readFile(new URL("runnables/hostfns-rs/hostfns-rs.wasm", repo)),
        { pool, allowedHosts: [host] },
      );
      assert.equal(output(await command(plain, ["fetch", "0", `${origin}/echo`, ""])), "none");
    });
    await t.step("entries are checked", () => {
      assert.throws(() => new RunnablePool({ authHeaders: { "http://x": "a" } }), TypeError);
      assert.throws(() => new RunnablePool({ authHeaders: { x: "a\r\nb: c" } }), TypeError);
    });
    seen.splice(0);
  } finally {
    await server.shutdown();
    await other.server.shutdown();
  }
});

for (const lang of LANGS) {
  Deno.test(`${lang}: request_set_field changes the job's request as Reactr does`, async (t) => {
    using pool = new RunnablePool({ concurrency: 1 });
    using runnable = await load(lang, pool);
    const cases: [string, string[], string][] = [
      ["meta method", ["set", "0", "method", "PATCH"], "PATCH"],
      ["meta url", ["set", "0", "url", "/other?a=1"], "/other?a=1"],
      ["meta id stays", ["set", "0", "id", "forged"], "req-1"],
      ["meta body", ["set", "0", "body", "new body"], "new body"],
      ["a body field", ["set", "1", "city", "Paris"], "Paris"],
      ["a header, read case-insensitively", ["set", "2", "X-New", "yes"], "yes"],
      ["a URL param", ["set", "3", "id", "8"], "8"],
      ["a state value", ["set", "4", "greeting", "hello"], "hello"],
    ];
    for (const [name, lines, expected] of cases) {
      await t.step(name, async () => {
        const original = request();
        assert.equal(output(await command(runnable, lines, original)), expected);
        // The caller's request object keeps its values.
        assert.deepEqual(original, request());
      });
    }
    await t.step("a body field keeps the other fields", async () => {
      const body = ["set", "1", "city", "Paris"];
      assert.equal(output(await command(runnable, body, request())), "Paris");
      const read = await command(runnable, ["get", "1", "name"], request());
      assert.equal(output(read), "Ada");
    });
    await t.step(
      "query parameters, unknown types and keys, and a non-object body are errors",
      async () => {
        assert.deepEqual(failure(await command(runnable, ["set", "5", "q", "1"], request())), {
          code: 400,
          message: "query parameters cannot be set; set the meta field url instead",
        });
        assert.deepEqual(failure(await command(runnable, ["set", "9", "k", "v"], request())), {
          code: 400,
          message: "invalid request field type 9",
        });
        assert.match(
          failure(await command(runnable, ["set", "0", "nope", "v"], request())).message,
          /invalid meta field "nope"/,
        );
        const list = { ...request(), body: encoder.encode("[1]") };
        assert.deepEqual(failure(await command(runnable, ["set", "1", "k", "v"], list)), {
          code: 400,
          message: "request body is not a JSON object",
        });
      },
    );
    await t.step("without a request attached, setting is an error", async () => {
      assert.deepEqual(failure(await command(runnable, ["set", "4", "k", "v"])), {
        code: 400,
        message: "no request is attached to this job",
      });
    });
    await t.step("nothing leaks into the next job", async () => {
      assert.equal(output(await command(runnable, ["set", "4", "k", "v"], request())), "v");
      assert.equal(output(await command(runnable, ["get", "4", "k"], request())), "");
    });
  });
}

/** A DatabaseBackend that records each query and answers as told: a test of the pool's bridge. */
class RecordingDatabase implements DatabaseBackend {
  readonly calls: { queryType: number; name: string; variables: readonly QueryVariable[] }[] = [];
  answer: (name: string) => Promise<Uint8Array> = () => Promise.resolve(encoder.encode("[]"));

  exec(queryType: number, name: string, variables: readonly QueryVariable[]): Promise<Uint8Array> {
    this.calls.push({ queryType, name, variables });
    return this.answer(name);
  }
}

for (const lang of LANGS) {
  Deno.test(`${lang}: db_exec reaches the pool's database with the variables in order`, async (t) => {
    const database = new RecordingDatabase();
    using pool = new RunnablePool({ concurrency: 1, database });
    using runnable = await load(lang, pool);

    await t.step(
      "type, name and the add_ffi_var variables, in order, a repeated name kept",
      async () => {
        database.answer = async () => {
          await new Promise((resolve) => setTimeout(resolve, 20)); // truly asynchronous
          return encoder.encode('[{"id":1}]');
        };
        const lines = ["db", "1", "SelectUser", "email=a@b.c", "id=7", "id=8"];
        assert.equal(output(await command(runnable, lines)), '[{"id":1}]');
        assert.deepEqual(database.calls.pop(), {
          queryType: 1,
          name: "SelectUser",
          variables: [
            { name: "email", value: "a@b.c" },
            { name: "id", value: "7" },
            { name: "id", value: "8" },
          ],
        });
      },
    );

    await t.step("a query uses the variables up", async () => {
      database.answer = () => Promise.resolve(encoder.encode("{}"));
      assert.equal(output(await command(runnable, ["db", "0", "Insert"])), "{}");
      assert.deepEqual(database.calls.pop()?.variables, []);
    });

    await t.step("the database's error is the call's error", async () => {
      database.answer = (name) => Promise.reject(new Error(`no query named "${name}"`));
      assert.deepEqual(failure(await command(runnable, ["db", "3", "Nope", "a=1"])), {
        code: 400,
        message: 'no query named "Nope"',
      });
    });

    await t.step(
      "a query slower than the job's time limit: 504, and the worker goes on",
      async () => {
        database.answer = () => new Promise(() => {}); // never answers
        using slow = await Runnable.load(
          `${lang}-slow`,
          await Deno.readFile(new URL(`runnables/${lang}/${lang}.wasm`, repo)),
          { pool, timeoutMs: 200 },
        );
        const started = Date.now();
        const result = await command(slow, ["db", "1", "Forever"]);
        assert.deepEqual(failure(result), {
          code: 504,
          message: `runnable "${lang}-slow" exceeded its time limit of 200 ms`,
        });
        assert.ok(Date.now() - started < 1000, "answered at the limit");
        database.answer = () => Promise.resolve(encoder.encode("[]"));
        assert.equal(output(await command(slow, ["db", "1", "Quick"])), "[]");
      },
    );
  });

  Deno.test(`${lang}: without a database or static files, the calls say what to configure`, async () => {
    using pool = new RunnablePool({ concurrency: 1 });
    using runnable = await load(lang, pool);
    assert.deepEqual(failure(await command(runnable, ["db", "1", "SelectUser", "id=1"])), {
      code: 400,
      message: "no database is configured: add connections.database and the query under " +
        "queries in Directive.yaml",
    });
    assert.deepEqual(failure(await command(runnable, ["file", "index.html"])), {
      code: 400,
      message: "no static files are configured: start the sat with --static DIR (or give the " +
        "pool staticFiles)",
    });
  });
}

/** A CacheBackend that answers asynchronously, over a RunnableCache: a test of the bridge. */
class DelayedCache implements CacheBackend {
  readonly inner = new RunnableCache();
  async get(key: string): Promise<Uint8Array | undefined> {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return this.inner.get(key);
  }
  async set(key: string, value: Uint8Array, ttlSeconds: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (key === "refused") throw new Error("the cache refused the key");
    this.inner.set(key, value, ttlSeconds);
  }
}

Deno.test("cache_set and cache_get wait for an asynchronous cache backend", async () => {
  const cache = new DelayedCache();
  using pool = new RunnablePool({ concurrency: 2, cache });
  using rs = await load("hostfns-rs", pool);
  using as = await load("hostfns-as", pool);
  assert.equal(output(await command(rs, ["cache_set", "shared", "0", "from rust"])), "stored");
  assert.equal(output(await command(as, ["cache_get", "shared"])), "from rust");
  assert.equal(decoder.decode(cache.inner.get("shared")), "from rust");
  assert.deepEqual(failure(await command(as, ["cache_get", "missing"])), {
    code: 400,
    message: "key not found",
  });
  assert.deepEqual(failure(await command(rs, ["cache_set", "refused", "0", "x"])), {
    code: 400,
    message: "the host did not store the value",
  });
});

Deno.test("StaticDir reads files under its folder and refuses every way out", async (t) => {
  const base = await Deno.makeTempDir({ prefix: "stratos-static-" });
  try {
    const dir = join(base, "static");
    await Deno.mkdir(join(dir, "css"), { recursive: true });
    await Deno.writeTextFile(join(dir, "index.html"), "<h1>hi</h1>");
    await Deno.writeTextFile(join(dir, "css/site.css"), "body{}");
    await Deno.writeTextFile(join(base, "secret.txt"), "outside");
    await Deno.symlink(join(base, "secret.txt"), join(dir, "escape.txt"));
    await Deno.symlink(base, join(dir, "up"));
    await Deno.symlink("index.html", join(dir, "alias.html"));
    const files = await StaticDir.open(dir);

    await t.step("files and nested files; a symbolic link that stays inside", async () => {
      assert.equal(decoder.decode(await files.read("index.html")), "<h1>hi</h1>");
      assert.equal(decoder.decode(await files.read("css/site.css")), "body{}");
      assert.equal(decoder.decode(await files.read("./alias.html")), "<h1>hi</h1>");
    });

    await t.step("a missing file or a folder reads as none", async () => {
      assert.equal(await files.read("nope.txt"), undefined);
      assert.equal(await files.read("css"), undefined);
    });

    await t.step("'..', absolute names, NUL and backslashes are refused", async () => {
      for (
        const name of ["../secret.txt", "css/../../secret.txt", "/etc/passwd", "a\0b", "..\\x", ""]
      ) {
        await assert.rejects(() => files.read(name), TypeError, JSON.stringify(name));
      }
    });

    await t.step("symbolic links that lead out are refused", async () => {
      for (const name of ["escape.txt", "up/secret.txt"]) {
        await assert.rejects(() => files.read(name), /leads out of the static folder/, name);
      }
    });

    await t.step("through get_static_file, from both languages", async () => {
      using pool = new RunnablePool({ concurrency: 1, staticFiles: files });
      for (const lang of LANGS) {
        using runnable = await load(lang, pool);
        assert.equal(output(await command(runnable, ["file", "css/site.css"])), "body{}");
        assert.deepEqual(failure(await command(runnable, ["file", "gone.txt"])), {
          code: 400,
          message: 'no static file named "gone.txt"',
        });
        assert.match(
          failure(await command(runnable, ["file", "../secret.txt"])).message,
          /must not have a "\.\." part/,
        );
        assert.match(
          failure(await command(runnable, ["file", "escape.txt"])).message,
          /leads out of the static folder/,
        );
      }
    });

    await t.step("a folder that does not exist, or a file, cannot be opened", async () => {
      await assert.rejects(() => StaticDir.open(join(base, "missing")), /cannot open/);
      await assert.rejects(() => StaticDir.open(join(base, "secret.txt")), /is not a folder/);
    });
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
