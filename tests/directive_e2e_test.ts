/**
 * Atmo's Directive semantics end to end, through relay, proxy and a sat that takes its
 * runnables from the proxy, with runnables built from source in this repo: `as` and `with`,
 * groups, onErr, response selection, path parameters, catch-all, query parameters, cache round
 * trips, capabilities and per-domain authentication on fetch, static files, a schedule firing
 * and a WebSocket stream handler.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Network, startNetwork, startSat, stopNetwork } from "./_network.ts";

function directive(fetchPort: number): string {
  return `identifier: com.example.steps
appVersion: v0.1.0
atmoVersion: v0.4.0
capabilities:
  http:
    rules:
      allowedDomains: ["127.0.0.1:${fetchPort}"]
authentication:
  domains:
    127.0.0.1:
      headerType: bearer
      value: env(STRATOS_TEST_TOKEN)
handlers:
  - type: request
    resource: /chain
    method: POST
    steps:
      - fn: helloworld-rs
        as: greeting
      - fn: hostfns-rs
        with:
          prev: greeting
  - type: request
    resource: /group
    method: POST
    steps:
      - fn: helloworld-rs
        as: greeting
      - group:
          - fn: hostfns-rs
            as: fromRust
            with:
              prev: greeting
          - fn: hostfns-as
            as: fromAs
            with:
              prev: greeting
    response: fromAs
  - type: request
    resource: /tolerant
    method: POST
    steps:
      - fn: hostfns-rs
        onErr:
          code:
            404: continue
          other: return
      - fn: helloworld-rs
    response: hostfns-rs
  - type: request
    resource: /strict
    method: POST
    steps:
      - fn: hostfns-rs
      - fn: helloworld-rs
  - type: request
    resource: /anyway
    method: POST
    steps:
      - fn: hostfns-as
        onErr:
          any: continue
      - fn: helloworld-rs
  - type: request
    resource: /users/:id/*rest
    method: POST
    steps:
      - fn: hostfns-rs
  - type: stream
    resource: /ws
    steps:
      - fn: helloworld-rs
schedules:
  - name: tick
    every:
      seconds: 1
    steps:
      - fn: ticker
`;
}

async function call(net: Network, path: string, body: string) {
  const response = await fetch(`http://127.0.0.1:${net.httpPort}${path}`, {
    method: "POST",
    body,
  });
  return { status: response.status, text: await response.text() };
}

Deno.test("Atmo's step semantics, fetch rules, static files, schedules and streams through the relay", async (t) => {
  const seen: string[] = [];
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      seen.push(request.headers.get("authorization") ?? "(none)");
      return new Response("from upstream");
    },
  );
  const net = await startNetwork({
    directive: directive(upstream.addr.port),
    runnables: {
      "hostfns-rs": "runnables/hostfns-rs/hostfns-rs.wasm",
      "hostfns-as": "runnables/hostfns-as/hostfns-as.wasm",
      ticker: "runnables/helloworld-as/helloworld-as.wasm",
    },
    proxyEnv: { STRATOS_TEST_TOKEN: "s3cret-token" },
  });
  try {
    await Deno.mkdir(join(net.home, "static/docs"), { recursive: true });
    await Deno.writeTextFile(join(net.home, "static/docs/greeting.txt"), "hi from static");
    startSat(net, net.satCommand, { runnables: false });
    // The new static file reaches the sat by hot reload, like everything the proxy serves.
    const deadline = Date.now() + 20_000;
    let file = await call(net, "/users/1/x", "file\ndocs/greeting.txt");
    while (file.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      file = await call(net, "/users/1/x", "file\ndocs/greeting.txt");
    }

    await t.step("static files from static/ beside the Directive", () => {
      assert.deepEqual(file, { status: 200, text: "hi from static" });
    });

    await t.step("as and with: a step reads an earlier output under an alias", async () => {
      assert.deepEqual(await call(net, "/chain", "get\n4\nprev"), {
        status: 200,
        text: "hello, get\n4\nprev",
      });
    });

    await t.step("a group runs on the state before it; response picks its output", async () => {
      assert.deepEqual(await call(net, "/group", "get\n4\nprev"), {
        status: 200,
        text: "hello, get\n4\nprev",
      });
    });

    await t.step("onErr: code 404 continues and stores the error; others return", async () => {
      assert.deepEqual(await call(net, "/tolerant", "error\n404\nnot here"), {
        status: 200,
        text: '{"code":404,"message":"not here"}',
      });
      const other = await call(net, "/tolerant", "error\n409\nconflict");
      assert.equal(other.status, 409);
      assert.deepEqual(JSON.parse(other.text), { status: 409, message: "conflict" });
      const strict = await call(net, "/strict", "error\n404\nnot here");
      assert.equal(strict.status, 404);
      assert.deepEqual(await call(net, "/anyway", "error\n500\nbroken"), {
        status: 200,
        text: "hello, error\n500\nbroken",
      });
    });

    await t.step("path parameters, catch-all and query parameters", async () => {
      assert.deepEqual(await call(net, "/users/42/a/b?q=x", "get\n3\nid"), {
        status: 200,
        text: "42",
      });
      assert.deepEqual(await call(net, "/users/42/a/b?q=x", "get\n3\nrest"), {
        status: 200,
        text: "/a/b",
      });
      assert.deepEqual(await call(net, "/users/42/a/b?q=x", "get\n5\nq"), {
        status: 200,
        text: "x",
      });
    });

    await t.step("the cache keeps a value across requests", async () => {
      assert.equal((await call(net, "/users/1/x", "cache_set\nk\n60\nkept")).text, "stored");
      assert.deepEqual(await call(net, "/users/1/x", "cache_get\nk"), {
        status: 200,
        text: "kept",
      });
    });

    await t.step("fetch reaches allowed hosts only, with the domain's Authorization", async () => {
      const url = `http://127.0.0.1:${upstream.addr.port}/x`;
      assert.deepEqual(await call(net, "/users/1/x", `fetch\n0\n${url}\n`), {
        status: 200,
        text: "from upstream",
      });
      assert.deepEqual(seen, ["Bearer s3cret-token"]);
      const refused = await call(net, "/users/1/x", "fetch\n0\nhttp://127.0.0.1:1/other\n");
      assert.equal(refused.status, 400);
      assert.match(refused.text, /not allowed|allow/i);
      assert.equal(seen.length, 1);
    });

    await t.step("a WebSocket stream handler answers each message", async () => {
      const socket = new WebSocket(`ws://127.0.0.1:${net.httpPort}/ws`);
      const answers: string[] = [];
      const done = new Promise<void>((resolve, reject) => {
        socket.onmessage = (event) => {
          answers.push(String(event.data));
          if (answers.length === 2) resolve();
        };
        socket.onerror = () => reject(new Error("WebSocket failed"));
      });
      await new Promise((resolve) => (socket.onopen = resolve));
      socket.send("one");
      socket.send("two");
      await done;
      socket.close();
      assert.deepEqual(answers, ["hello, one", "hello, two"]);
    });

    await t.step("the schedule fires every second", async () => {
      const until = Date.now() + 10_000;
      let fired = 0;
      while (fired < 2 && Date.now() < until) {
        const page = await (await fetch(`http://127.0.0.1:${net.httpPort}/metrics`)).text();
        const line = page.split("\n").find((l) =>
          l.startsWith('stratos_invocations_total{fn="ticker",outcome="ok"} ')
        );
        fired = Number(line?.split(" ")[1] ?? 0);
        if (fired < 2) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(fired >= 2, `the schedule ran ${fired} times in 10 s`);
    });
  } finally {
    await stopNetwork(net);
    await upstream.shutdown();
  }
});
