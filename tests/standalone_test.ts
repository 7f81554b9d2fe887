/**
 * The sat's standalone mode, like Suborbital's Sat: one runnable over HTTP, no relay or proxy,
 * run as a real process with the sat task's permission flags.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, Service } from "./_services.ts";

const HELLO = join(ROOT, "runnables/helloworld-rs/helloworld-rs.wasm");
const PROBE = join(ROOT, "tests/wasm/abi_probe.wasm");

async function standalone(module: string, args: string[], env: Record<string, string> = {}) {
  const sat = Service.start("sat", [module, ...args], env);
  const [, host, port] = await sat.line(/^listening on (\S+):(\d+)$/);
  return { sat, url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host}:${port}` };
}

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: "POST", body, headers });
  return { status: response.status, text: await response.text() };
}

Deno.test("a standalone sat serves one runnable on any method and path", async () => {
  const { sat, url } = await standalone(HELLO, ["--http", "127.0.0.1:0"]);
  try {
    assert.deepEqual(await post(`${url}/`, "my friend"), { status: 200, text: "hello, my friend" });
    assert.deepEqual(await post(`${url}/any/path?q=1`, "there"), {
      status: 200,
      text: "hello, there",
    });
    const put = await fetch(`${url}/x`, { method: "PUT", body: "put" });
    assert.equal(await put.text(), "hello, put");
  } finally {
    assert.equal((await sat.stop()).code, 0);
  }
});

Deno.test("the AssemblyScript runnable built from this repo says hello too", async () => {
  const { sat, url } = await standalone(join(ROOT, "runnables/helloworld-as/helloworld-as.wasm"), [
    "--http",
    "127.0.0.1:0",
  ]);
  try {
    assert.deepEqual(await post(url, "my friend"), { status: 200, text: "hello, my friend" });
    assert.deepEqual(await post(url, "héllo wörld"), { status: 200, text: "hello, héllo wörld" });
  } finally {
    await sat.stop();
  }
});

Deno.test("a standalone sat seeds state and params from X-Atmo headers and maps errors", async () => {
  const { sat, url } = await standalone(PROBE, ["--http", "127.0.0.1:0"]);
  try {
    const state = { "X-Atmo-State": JSON.stringify({ name: "héllo" }) };
    assert.deepEqual(await post(url, "R4name", state), { status: 200, text: "héllo" });
    const params = { "X-Atmo-Params": JSON.stringify({ id: "42" }) };
    assert.deepEqual(await post(url, "R3id", params), { status: 200, text: "42" });
    const teapot = await post(url, "Eshort and stout");
    assert.equal(teapot.status, 418);
    assert.deepEqual(JSON.parse(teapot.text), { status: 418, message: "short and stout" });
    const trap = await post(url, "T");
    assert.equal(trap.status, 500);
    assert.match(JSON.parse(trap.text).message, /trapped/);
    for (const bad of ["[1]", '{"a":1}', "not json"]) {
      const answer = await post(url, "x", { "X-Atmo-State": bad });
      assert.equal(answer.status, 400, bad);
      assert.match(JSON.parse(answer.text).message, /X-Atmo-State/);
    }
  } finally {
    await sat.stop();
  }
});

Deno.test("a standalone sat applies headers, keeps a cache across requests, reports aborts", async () => {
  const { sat, url } = await standalone(join(ROOT, "tests/wasm/abi_more.wasm"), [
    "--http",
    "127.0.0.1:0",
  ]);
  try {
    const response = await fetch(url, { method: "POST", body: "h6x-testyes" });
    assert.equal(await response.text(), "headers");
    assert.equal(response.headers.get("x-test"), "yes");
    assert.equal(response.headers.get("x-runnable"), "abi_more");
    assert.deepEqual(await post(url, "s03keyval"), { status: 200, text: "ok" });
    assert.deepEqual(await post(url, "gkey"), { status: 200, text: "val" });
    const missing = await post(url, "gnope");
    assert.equal(missing.status, 404);
    const abort = await post(url, "a");
    assert.equal(abort.status, 500);
    assert.equal(JSON.parse(abort.text).message, "abort: boom at main.ts:12:5");
  } finally {
    await sat.stop();
  }
});

Deno.test("a standalone sat fetches only from hosts --allow-hosts names", async () => {
  let hits = 0;
  const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    hits++;
    return new Response("from upstream");
  });
  const target = `127.0.0.1:${upstream.addr.port}`;
  const probe = join(ROOT, "tests/wasm/fetch_probe.wasm");
  const allowed = await standalone(probe, ["--http", "127.0.0.1:0", "--allow-hosts", target]);
  const denied = await standalone(probe, ["--http", "127.0.0.1:0"]);
  try {
    assert.deepEqual(await post(allowed.url, `0nhttp://${target}/x\n`), {
      status: 200,
      text: "from upstream",
    });
    const refused = await post(denied.url, `0nhttp://${target}/x\n`);
    assert.equal(refused.status, 400);
    assert.match(refused.text, /is not in allowedHosts/);
    assert.equal(hits, 1);
  } finally {
    await allowed.sat.stop();
    await denied.sat.stop();
    await upstream.shutdown();
  }
});

Deno.test("--time-limit gives 504, --memory-limit refuses growth, --max-output caps output", async () => {
  const { sat, url } = await standalone(PROBE, [
    "--http",
    "127.0.0.1:0",
    "--time-limit",
    "300",
    "--memory-limit",
    "4",
    "--workers",
    "1",
    "--max-output",
    "1",
  ]);
  try {
    const loop = await post(url, "L");
    assert.equal(loop.status, 504);
    assert.match(JSON.parse(loop.text).message, /exceeded its time limit of 300 ms/);
    const grow = await post(url, "G");
    assert.equal(grow.status, 507); // abi_probe's own answer when memory.grow is refused
    const huge = await post(url, "x".repeat(1024 * 1024 + 1)); // abi_probe echoes its input
    assert.equal(huge.status, 500);
    assert.match(JSON.parse(huge.text).message, /over its output limit of 1048576/);
    assert.deepEqual(await post(url, "still here"), { status: 200, text: "still here" });
  } finally {
    await sat.stop();
  }
});

Deno.test("SAT_HTTP_PORT picks the port when --http is not given, and --http wins", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const fromEnv = await standalone(HELLO, [], { SAT_HTTP_PORT: String(port) });
  try {
    assert.equal(fromEnv.url, `http://127.0.0.1:${port}`);
    assert.equal((await post(fromEnv.url, "env")).text, "hello, env");
  } finally {
    await fromEnv.sat.stop();
  }
  const flagWins = await standalone(HELLO, ["--http", "127.0.0.1:0"], {
    SAT_HTTP_PORT: String(port),
  });
  try {
    assert.notEqual(flagWins.url, `http://127.0.0.1:${port}`);
  } finally {
    await flagWins.sat.stop();
  }
});

Deno.test("a standalone sat given a file that is not Wasm exits 1 naming it", async () => {
  const sat = Service.start("sat", [join(ROOT, "tests/wasm/broken/broken.wasm")], {});
  assert.equal((await sat.exited()).code, 1);
  assert.match(sat.stderr, /broken\.wasm/);
});
