/**
 * A function whose module never reads the request (imports no `request_get_field` or
 * `request_set_field`) is sent none of the request's headers and params: the sat says which
 * functions those are in HELLO and READY, the proxy's SatConnection leaves them out, and the
 * proxy does not even collect the headers when every sat running the function said so.
 */
import assert from "node:assert/strict";
import {
  decodeInvocationMessage,
  type Delivery,
  type InvocationBody,
  InvocationProtocolError,
  type InvokeHeader,
  type RunOutcome,
  SatConnection,
  serveInvocations,
} from "../src/invocation/mod.ts";
import { encodeHello, encodeReady } from "../src/invocation/invocation_codec.ts";
import { requestlessFunctions } from "../src/sat/mod.ts";
import { SatRegistry } from "../src/proxy/sat_registry.ts";
import { createStreamInvoker, NO_HEADERS } from "../src/proxy/proxy_handler.ts";
import { channelPair } from "./_channels.ts";
import { HELLO_FILE, load, testModule } from "./_wasm_modules.ts";

const header = (fn: string): InvokeHeader => ({
  fn,
  method: "POST",
  url: "/x/1",
  requestId: "r1",
  headers: { authorization: "Bearer secret", "content-type": "text/plain" },
  params: { id: "1" },
});

/** A sat serving `echo` and `blind` (said requestless), and what its runner was given. */
async function setUp(requestless: string[]) {
  const seen: InvokeHeader[] = [];
  const runner = (h: InvokeHeader, _: InvocationBody): Promise<RunOutcome> => {
    seen.push(h);
    return Promise.resolve({ ok: true, output: new Uint8Array(0) });
  };
  const [satChannel, proxyChannel] = await channelPair();
  const served = serveInvocations(satChannel, ["echo", "blind"], runner, {
    hello: { requestless },
  });
  const sat = await SatConnection.accept(proxyChannel);
  return { sat, served, seen };
}

Deno.test("a requestless function's invocation carries no headers or params; others keep theirs", async () => {
  const { sat, served, seen } = await setUp(["blind"]);
  assert.equal(sat.readsRequest("echo"), true);
  assert.equal(sat.readsRequest("blind"), false);
  await sat.invoke(header("echo"), new Uint8Array(0));
  await sat.invoke(header("blind"), new Uint8Array(0));
  assert.deepEqual(seen[0], header("echo"));
  assert.deepEqual(seen[1], { ...header("blind"), headers: {}, params: {} });
  await sat.close();
  await served;
});

Deno.test("the registry collects headers unless every sat running a function said it never reads them", async () => {
  const registry = new SatRegistry();
  const a = await setUp(["blind"]);
  registry.add(a.sat);
  assert.equal(registry.readsRequest("blind"), false);
  assert.equal(registry.readsRequest("echo"), true);
  assert.equal(registry.readsRequest("nobody-runs-it"), true);
  const b = await setUp([]);
  registry.add(b.sat);
  assert.equal(registry.readsRequest("blind"), true, "b's blind reads the request");
  await registry.closeAll();
  await Promise.all([a.served, b.served]);
});

Deno.test("HELLO and READY carry requestless function keys and refuse a malformed list", () => {
  assert.deepEqual(decodeInvocationMessage(encodeHello(["a", "b"], { requestless: ["b"] })), {
    type: 1,
    functions: ["a", "b"],
    requestless: ["b"],
  });
  assert.deepEqual(
    decodeInvocationMessage(encodeReady(3, { functions: {}, requestless: ["ns::f"] })),
    { type: 8, id: 3, ready: { ok: true, functions: {}, requestless: ["ns::f"] } },
  );
  for (const bad of [[1], "b", ["not a key!"]]) {
    assert.throws(
      () => decodeInvocationMessage(encodeHello(["a"], { requestless: bad as string[] })),
      InvocationProtocolError,
    );
    assert.throws(
      () => decodeInvocationMessage(encodeReady(1, { functions: {}, requestless: bad })),
      InvocationProtocolError,
    );
  }
});

Deno.test("requestlessFunctions names the modules that import no request function", async () => {
  const hello = await load(HELLO_FILE, "helloworld-rs");
  const probe = await load(testModule("abi_probe"), "abi-probe");
  try {
    assert.equal(hello.readsRequest, false);
    assert.equal(probe.readsRequest, true);
    assert.deepEqual(
      requestlessFunctions(new Map([["abi-probe", probe], ["helloworld-rs", hello]])),
      ["helloworld-rs"],
    );
  } finally {
    hello.close();
    probe.close();
  }
});

Deno.test("headers left out for a requestless function are collected after all for a sat that reads them", async () => {
  const registry = new SatRegistry();
  const reading = await setUp([]);
  registry.add(reading.sat);
  const invoke = createStreamInvoker({ sats: registry });
  let collected = 0;
  const headersOf = () => {
    collected++;
    return { authorization: "Bearer secret" };
  };
  const lean = { ...header("blind"), headers: NO_HEADERS, params: {} };
  await invoke("blind", lean, new Uint8Array(0), undefined, headersOf);
  assert.deepEqual(reading.seen.at(-1)?.headers, { authorization: "Bearer secret" });
  assert.equal(collected, 1);
  await registry.closeAll();
  await reading.served;

  const blindRegistry = new SatRegistry();
  const blind = await setUp(["blind"]);
  blindRegistry.add(blind.sat);
  await createStreamInvoker({ sats: blindRegistry })(
    "blind",
    lean,
    new Uint8Array(0),
    undefined,
    headersOf,
  );
  assert.deepEqual(blind.seen.at(-1)?.headers, {});
  assert.equal(collected, 1, "not collected for a sat that never reads them");
  await blindRegistry.closeAll();
  await blind.served;
});

Deno.test("while a deployment is applied, invocations carry their headers until READY says otherwise", async () => {
  const seen: InvokeHeader[] = [];
  let apply!: () => void;
  const applied = new Promise<void>((resolve) => apply = resolve);
  const delivery: Delivery = {
    store: () => Promise.resolve(),
    deploy: async () => {
      await applied;
      return { functions: { blind: "a".repeat(64) }, requestless: ["blind"] };
    },
  };
  const [satChannel, proxyChannel] = await channelPair();
  const served = serveInvocations(satChannel, ["blind"], (h) => {
    seen.push(h);
    return Promise.resolve({ ok: true, output: new Uint8Array(0) });
  }, {
    delivery,
    hello: { requestless: ["blind"], delivery: true, cached: ["a".repeat(64)] },
  });
  const sat = await SatConnection.accept(proxyChannel);
  assert.equal(sat.readsRequest("blind"), false);
  const manifest = {
    runnables: { blind: "a".repeat(64) },
    static: {},
    config: { allowedHosts: [], authHeaders: {}, queries: [] },
  };
  const deployed = sat.deploy(manifest, new Map());
  // The DEPLOY is out; the sat may switch to modules that read the request at any time.
  for (let tries = 0; sat.readsRequest("blind") === false; tries++) {
    assert.ok(tries < 1000, "the DEPLOY went out");
    await new Promise((r) => setTimeout(r, 1));
  }
  await sat.invoke(header("blind"), new Uint8Array(0));
  assert.deepEqual(seen.at(-1)?.headers, header("blind").headers);
  apply();
  await deployed;
  assert.equal(sat.readsRequest("blind"), false);
  await sat.invoke(header("blind"), new Uint8Array(0));
  assert.deepEqual(seen.at(-1)?.headers, {});
  await sat.close();
  await served;
});
