/**
 * Every host function of Suborbital's ABI through the full relay path: relay, proxy and sat as
 * real processes on loopback (the exact permission flags of their deno tasks), a Directive
 * routing to runnables/hostfns-rs and runnables/hostfns-as, and the sat started with the command
 * the proxy prints plus `--runnables DIR`, `--allow-hosts` and `--static`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, Service } from "./_services.ts";

const LANGS = ["hostfns-rs", "hostfns-as"] as const;

const DIRECTIVE = `identifier: com.example.hostfns
appVersion: v0.1.0
atmoVersion: v0.4.0
handlers:
  - type: request
    resource: /rs
    method: POST
    steps:
      - fn: hostfns-rs
  - type: request
    resource: /as
    method: POST
    steps:
      - fn: hostfns-as
  - type: request
    resource: /users/:id
    method: POST
    steps:
      - fn: hostfns-rs
  - type: request
    resource: /chain-rs
    method: POST
    steps:
      - fn: helloworld-rs
      - fn: hostfns-rs
  - type: request
    resource: /chain-as
    method: POST
    steps:
      - fn: helloworld-rs
      - fn: hostfns-as
`;

/** A loopback HTTP server: `/hello` plain text, anything else a GraphQL endpoint. */
function upstream(): { server: Deno.HttpServer<Deno.NetAddr>; origin: string } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (new URL(req.url).pathname === "/hello") return new Response("hello from upstream");
    const { query, variables } = await req.json();
    if (query === "fail") return Response.json({ errors: [{ message: "bad query" }] });
    return Response.json({ data: { query, variables } });
  });
  return { server, origin: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("every host function answers through relay, proxy and sat, from Rust and AssemblyScript", async (t) => {
  const { server, origin } = upstream();
  const home = await Deno.makeTempDir({ prefix: "stratos-hostfns-e2e-" });
  const services: Service[] = [];
  try {
    const runnables = join(home, "runnables");
    for (const name of [...LANGS, "helloworld-rs"]) {
      await Deno.mkdir(join(runnables, name), { recursive: true });
      await Deno.copyFile(
        join(ROOT, `runnables/${name}/${name}.wasm`),
        join(runnables, name, `${name}.wasm`),
      );
    }
    await Deno.mkdir(join(home, "static"));
    await Deno.writeTextFile(join(home, "static/page.html"), "<p>static</p>");
    const directive = join(home, "Directive.yaml");
    await Deno.writeTextFile(directive, DIRECTIVE);

    const relay = Service.start("relay", ["--listen", "127.0.0.1:0"], {
      STRATOS_HOME: join(home, "relay-home"),
    });
    services.push(relay);
    const relayPort = (await relay.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]!;
    const proxy = Service.start("proxy", [
      "--relay",
      `127.0.0.1:${relayPort}`,
      "--http",
      "127.0.0.1:0",
      "--directive",
      directive,
    ], { STRATOS_HOME: join(home, "proxy-home") });
    services.push(proxy);
    const httpPort = (await proxy.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]!;
    const satCommand = (await proxy.line(/^sat command: (.*)$/))[1]!;
    const prefix = "deno task sat ";
    assert.ok(satCommand.startsWith(prefix), satCommand);
    const sat = Service.start("sat", [
      ...satCommand.slice(prefix.length).split(" "),
      "--runnables",
      runnables,
      "--allow-hosts",
      new URL(origin).host,
      "--static",
      join(home, "static"),
    ], { STRATOS_HOME: join(home, "sat-home") });
    services.push(sat);

    const post = async (path: string, lines: string[], headers: Record<string, string> = {}) => {
      const response = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
        method: "POST",
        body: lines.join("\n"),
        headers,
      });
      return { status: response.status, text: await response.text(), headers: response.headers };
    };
    const deadline = Date.now() + 20_000;
    while ((await post("/rs", ["log", "3", "ready?"])).status === 503) {
      assert.ok(Date.now() < deadline, "the sat attaches");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    for (const lang of LANGS) {
      const path = lang === "hostfns-rs" ? "/rs" : "/as";
      await t.step(`${lang}: request fields, set and get`, async () => {
        const got = await post(`${path}?q=9`, ["get", "5", "q"], { "X-Custom": "c" });
        assert.deepEqual([got.status, got.text], [200, "9"]);
        assert.equal((await post(path, ["get", "2", "x-custom"], { "X-Custom": "c" })).text, "c");
        assert.equal((await post(path, ["get", "0", "method"])).text, "POST");
        assert.equal((await post(path, ["set", "4", "k", "v"])).text, "v");
      });

      await t.step(`${lang}: request state from the step before`, async () => {
        const chain = lang === "hostfns-rs" ? "/chain-rs" : "/chain-as";
        const answer = await post(chain, ["get", "4", "helloworld-rs"]);
        assert.deepEqual([answer.status, answer.text], [200, "hello, get\n4\nhelloworld-rs"]);
      });

      await t.step(`${lang}: response header, log, cache`, async () => {
        const header = await post(path, ["header", "x-runnable", lang]);
        assert.equal(header.text, "header set");
        assert.equal(header.headers.get("x-runnable"), lang);
        assert.equal((await post(path, ["log", "3", `e2e log ${lang}`])).text, "logged");
        assert.equal((await post(path, ["cache_set", `key-${lang}`, "0", lang])).text, "stored");
        assert.equal((await post(path, ["cache_get", `key-${lang}`])).text, lang);
      });

      await t.step(`${lang}: fetch_url and graphql_query to the allowed host`, async () => {
        assert.equal(
          (await post(path, ["fetch", "0", `${origin}/hello`, ""])).text,
          "hello from upstream",
        );
        const data = await post(path, ["graphql", `${origin}/graphql`, "{ me }", "id=1"]);
        assert.deepEqual(JSON.parse(data.text), { query: "{ me }", variables: { id: "1" } });
        const failed = await post(path, ["graphql", `${origin}/graphql`, "fail"]);
        assert.equal(failed.status, 400);
        assert.match(failed.text, /GraphQL error: bad query/);
      });

      await t.step(`${lang}: static file, secret, database and errors`, async () => {
        assert.equal((await post(path, ["file", "page.html"])).text, "<p>static</p>");
        const secret = await post(path, ["secret", "HOME"]);
        assert.equal(secret.status, 400);
        assert.match(secret.text, /no secret named \\"HOME\\" is allowed/);
        const db = await post(path, ["db", "1", "SelectUser", "id=1"]);
        assert.equal(db.status, 400);
        assert.match(db.text, /no database is configured: add connections\.database/);
        const teapot = await post(path, ["error", "418", "short and stout"]);
        assert.equal(teapot.status, 418);
        assert.match(teapot.text, /short and stout/);
      });
    }

    await t.step("URL parameters of the route reach the runnable", async () => {
      assert.equal((await post("/users/42", ["get", "3", "id"])).text, "42");
    });

    await t.step("the runnables' log lines reach the sat's log", () => {
      const log = `${sat.lines.join("\n")}\n${sat.stderr}`;
      for (const lang of LANGS) assert.ok(log.includes(`e2e log ${lang}`), lang);
    });
  } finally {
    for (const service of services.reverse()) await service.stop();
    await server.shutdown();
    await Deno.remove(home, { recursive: true });
  }
});
