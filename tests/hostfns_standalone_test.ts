/**
 * Every host function of Suborbital's ABI through the sat's standalone mode, run as a real
 * process with the sat task's permissions, from both runnables built in this repo:
 * runnables/hostfns-rs (Rust) and runnables/hostfns-as (AssemblyScript). Their commands: see
 * runnables/hostfns-rs/src/lib.rs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, Service } from "./_services.ts";

const LANGS = ["hostfns-rs", "hostfns-as"] as const;

/** A loopback HTTP server: `/graphql` is a GraphQL endpoint, `/hello` plain text. */
function upstream(): { server: Deno.HttpServer<Deno.NetAddr>; origin: string } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/hello") return new Response(`hello from upstream (${req.method})`);
    const { query, variables } = await req.json();
    if (query === "fail") return Response.json({ errors: [{ message: "bad query" }] });
    return Response.json({ data: { query, variables } });
  });
  return { server, origin: `http://127.0.0.1:${server.addr.port}` };
}

async function post(url: string, lines: string[], headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: "POST", body: lines.join("\n"), headers });
  const text = await response.text();
  return { status: response.status, text, headers: response.headers };
}

function message(text: string): string {
  return JSON.parse(text).message;
}

for (const lang of LANGS) {
  Deno.test(`${lang} reaches every host function through a standalone sat`, async (t) => {
    const { server, origin } = upstream();
    const dir = await Deno.makeTempDir({ prefix: "stratos-hostfns-" });
    await Deno.mkdir(join(dir, "static/docs"), { recursive: true });
    await Deno.writeTextFile(join(dir, "static/docs/readme.txt"), "static hello");
    const sat = Service.start("sat", [
      join(ROOT, `runnables/${lang}/${lang}.wasm`),
      "--http",
      "127.0.0.1:0",
      "--workers",
      "2",
      "--allow-hosts",
      new URL(origin).host,
      "--static",
      join(dir, "static"),
    ], {});
    try {
      const [, host, port] = await sat.line(/^listening on (\S+):(\d+)$/);
      const url = `http://${host}:${port}`;

      await t.step("request_get_field: meta, body, header, URL param, state, query", async () => {
        const seeded = {
          "X-Atmo-State": JSON.stringify({ greeting: "héllo" }),
          "X-Atmo-Params": JSON.stringify({ id: "42" }),
          "X-Custom": "yes",
        };
        const cases: [string[], string][] = [
          [["get", "0", "method"], "POST"],
          [["get", "0", "url"], "/path?q=7"],
          [["get", "2", "X-CUSTOM"], "yes"],
          [["get", "3", "id"], "42"],
          [["get", "4", "greeting"], "héllo"],
          [["get", "5", "q"], "7"],
          [["get", "4", "missing"], ""],
        ];
        for (const [lines, expected] of cases) {
          const answer = await post(`${url}/path?q=7`, lines, seeded);
          assert.deepEqual([answer.status, answer.text], [200, expected], lines.join(" "));
        }
        // A body field: the body is the whole input, so it is not JSON here.
        const body = await post(url, ["get", "1", "name"]);
        assert.equal(body.status, 400);
        assert.equal(message(body.text), "request body is not JSON");
      });

      await t.step("request_set_field: the job reads back what it set", async () => {
        assert.equal((await post(url, ["set", "4", "k", "stored"])).text, "stored");
        assert.equal((await post(url, ["set", "2", "X-Mine", "m"])).text, "m");
        assert.equal((await post(url, ["set", "0", "method", "PUT"])).text, "PUT");
        const query = await post(url, ["set", "5", "q", "1"]);
        assert.equal(query.status, 400);
        assert.match(message(query.text), /query parameters cannot be set/);
      });

      await t.step("resp_set_header: the header reaches the client", async () => {
        const answer = await post(url, ["header", "x-from-runnable", "yes"]);
        assert.equal(answer.text, "header set");
        assert.equal(answer.headers.get("x-from-runnable"), "yes");
      });

      await t.step("log_msg: the message reaches the sat's log", async () => {
        const note = `note-${crypto.randomUUID()}`;
        assert.equal((await post(url, ["log", "2", note])).text, "logged");
        const deadline = Date.now() + 5000;
        while (!`${sat.lines.join("\n")}\n${sat.stderr}`.includes(note)) {
          assert.ok(Date.now() < deadline, "the log line arrives");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      });

      await t.step("cache_set / cache_get: shared across requests and workers", async () => {
        assert.equal((await post(url, ["cache_set", "k", "60", "cached value"])).text, "stored");
        const reads = await Promise.all(
          Array.from({ length: 6 }, () => post(url, ["cache_get", "k"])),
        );
        for (const read of reads) assert.equal(read.text, "cached value");
        const missing = await post(url, ["cache_get", "nope"]);
        assert.deepEqual([missing.status, message(missing.text)], [400, "key not found"]);
      });

      await t.step("get_secret_value: nothing is allowed in standalone mode", async () => {
        const answer = await post(url, ["secret", "HOME"]);
        assert.equal(answer.status, 400);
        assert.equal(message(answer.text), 'no secret named "HOME" is allowed for this runnable');
      });

      await t.step("fetch_url: an allowed host answers, another is refused", async () => {
        assert.equal(
          (await post(url, ["fetch", "3", `${origin}/hello`, "b"])).text,
          "hello from upstream (POST)",
        );
        const refused = await post(url, ["fetch", "0", "http://127.0.0.2:1/", ""]);
        assert.equal(refused.status, 400);
        assert.match(message(refused.text), /is not in allowedHosts/);
      });

      await t.step("graphql_query: data with the variables, errors as the error", async () => {
        const answer = await post(url, ["graphql", `${origin}/graphql`, "{ me }", "a=1", "b=2"]);
        assert.deepEqual(JSON.parse(answer.text), {
          query: "{ me }",
          variables: { a: "1", b: "2" },
        });
        const failed = await post(url, ["graphql", `${origin}/graphql`, "fail"]);
        assert.deepEqual([failed.status, message(failed.text)], [400, "GraphQL error: bad query"]);
      });

      await t.step("get_static_file: files of --static, nothing outside it", async () => {
        assert.equal((await post(url, ["file", "docs/readme.txt"])).text, "static hello");
        const missing = await post(url, ["file", "docs/none.txt"]);
        assert.equal(message(missing.text), 'no static file named "docs/none.txt"');
        const out = await post(url, ["file", "../static/docs/readme.txt"]);
        assert.equal(out.status, 400);
        assert.match(message(out.text), /must not have a "\.\." part/);
      });

      await t.step("db_exec: without a database, an error saying what to configure", async () => {
        const answer = await post(url, ["db", "1", "SelectUser", "id=1"]);
        assert.equal(answer.status, 400);
        assert.match(message(answer.text), /^no database is configured: add connections\.database/);
      });

      await t.step("return_error: the runnable's code is the status", async () => {
        const answer = await post(url, ["error", "418", "short and stout"]);
        assert.deepEqual(JSON.parse(answer.text), { status: 418, message: "short and stout" });
      });
    } finally {
      assert.equal((await sat.stop()).code, 0);
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("--static with a folder that does not exist stops the sat with a clear error", async () => {
  const sat = Service.start("sat", [
    join(ROOT, "runnables/hostfns-rs/hostfns-rs.wasm"),
    "--http",
    "127.0.0.1:0",
    "--static",
    "/nonexistent-stratos-static",
  ], {});
  const status = await sat.exited();
  assert.notEqual(status.code, 0);
  assert.match(sat.stderr, /--static: static files: cannot open \/nonexistent-stratos-static/);
});
