/**
 * Runnable delivery in process: a real secure channel between a SatConnection (the proxy's
 * side) and serveInvocations with DeployedRunnables (the sat's side), real Wasm modules.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type DeployManifest,
  DeploymentError,
  type InvokeHeader,
  SatConnection,
  serveInvocations,
  sha256Hex,
} from "../src/invocation/mod.ts";
import { encodeWithBody } from "../src/invocation/invocation_codec.ts";
import { BLOB } from "../src/invocation/invocation_codec.ts";
import { DeployedRunnables } from "../src/sat/mod.ts";
import { channelPair } from "./_channels.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const HELLO_RS = await Deno.readFile(join(ROOT, "runnables/helloworld-rs/helloworld-rs.wasm"));
const SLOW = await Deno.readFile(join(ROOT, "tests/wasm/slow.wasm"));
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

function header(fn: string): InvokeHeader {
  return { fn, method: "POST", url: "/x", requestId: "r1", headers: {}, params: {} };
}

function manifest(runnables: Record<string, string>): DeployManifest {
  return {
    runnables,
    static: {},
    config: { allowedHosts: [], authHeaders: {}, queries: [] },
  };
}

async function files(...contents: Uint8Array[]): Promise<Map<string, Uint8Array>> {
  return new Map(await Promise.all(contents.map(async (c) => [await sha256Hex(c), c] as const)));
}

/** A sat taking deliveries into `cacheDir`, attached to a proxy-side SatConnection. */
async function attach(cacheDir: string) {
  const [satChannel, proxyChannel] = await channelPair();
  const deployed = await DeployedRunnables.open({
    cacheDir,
    runnable: { concurrency: 1, timeoutMs: 5000 },
  });
  const hello = await deployed.hello();
  const served = serveInvocations(satChannel, hello.functions, deployed.runner, {
    delivery: deployed,
    hello: {
      digests: hello.digests,
      cached: hello.cached,
      delivery: true,
      requestless: hello.requestless,
    },
  });
  const sat = await SatConnection.accept(proxyChannel);
  return {
    sat,
    proxyChannel,
    served,
    close: async () => {
      await sat.close();
      await served;
      await deployed.close();
    },
  };
}

Deno.test("a delivered runnable is checked, cached 0600 under its digest, and served", async () => {
  const cacheDir = await Deno.makeTempDir();
  const net = await attach(cacheDir);
  try {
    assert.equal(net.sat.delivery, true);
    assert.equal(net.sat.functions.size, 0);
    const sha = await sha256Hex(HELLO_RS);
    const functions = await net.sat.deploy(
      manifest({ "helloworld-rs": sha }),
      await files(HELLO_RS),
    );
    assert.deepEqual([...functions], [["helloworld-rs", sha]]);
    // READY says helloworld-rs never reads the request: no headers go to it.
    assert.equal(net.sat.readsRequest("helloworld-rs"), false);
    const outcome = await net.sat.invoke(header("helloworld-rs"), bytes("my friend"));
    assert.ok(outcome.ok);
    assert.equal(text(outcome.output), "hello, my friend");
    const stat = await Deno.stat(join(cacheDir, sha));
    assert.equal(stat.mode! & 0o777, 0o600);
    assert.deepEqual(await Deno.readFile(join(cacheDir, sha)), HELLO_RS);
  } finally {
    await net.close();
  }
  // A new connection announces the cached file: the proxy sends only the manifest (it has no
  // file to send here, so it would fail if it tried).
  const again = await attach(cacheDir);
  try {
    const sha = await sha256Hex(HELLO_RS);
    await again.sat.deploy(manifest({ "helloworld-rs": sha }), new Map());
    const outcome = await again.sat.invoke(header("helloworld-rs"), bytes("cache"));
    assert.ok(outcome.ok);
    assert.equal(text(outcome.output), "hello, cache");
  } finally {
    await again.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a file whose content does not match its digest is refused; nothing changes", async () => {
  const cacheDir = await Deno.makeTempDir();
  const net = await attach(cacheDir);
  try {
    const good = await sha256Hex(HELLO_RS);
    await net.sat.deploy(manifest({ "helloworld-rs": good }), await files(HELLO_RS));
    // Claim SLOW's digest for different bytes.
    const claimed = await sha256Hex(SLOW);
    await assert.rejects(
      net.sat.deploy(manifest({ slow: claimed }), new Map([[claimed, HELLO_RS]])),
      (error: Error) => error instanceof DeploymentError && /not the announced/.test(error.message),
    );
    assert.deepEqual([...net.sat.functions.keys()], ["helloworld-rs"]);
    const outcome = await net.sat.invoke(header("helloworld-rs"), bytes("still"));
    assert.ok(outcome.ok);
    assert.equal(text(outcome.output), "hello, still");
    await assert.rejects(Deno.stat(join(cacheDir, claimed)), Deno.errors.NotFound);
  } finally {
    await net.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a module that does not load fails the deployment; the old one keeps serving", async () => {
  const cacheDir = await Deno.makeTempDir();
  const net = await attach(cacheDir);
  try {
    const good = await sha256Hex(HELLO_RS);
    await net.sat.deploy(manifest({ "helloworld-rs": good }), await files(HELLO_RS));
    const junk = bytes("not wasm at all");
    await assert.rejects(
      net.sat.deploy(
        manifest({ "helloworld-rs": await sha256Hex(junk) }),
        await files(junk),
      ),
      (error: Error) =>
        error instanceof DeploymentError &&
        /runnable "helloworld-rs" does not load/.test(error.message),
    );
    const outcome = await net.sat.invoke(header("helloworld-rs"), bytes("old"));
    assert.ok(outcome.ok);
    assert.equal(text(outcome.output), "hello, old");
  } finally {
    await net.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("an invocation in flight finishes on the old deployment; new ones run the new", async () => {
  const cacheDir = await Deno.makeTempDir();
  const net = await attach(cacheDir);
  try {
    const slowSha = await sha256Hex(SLOW);
    await net.sat.deploy(manifest({ slow: slowSha }), await files(SLOW));
    const inFlight = net.sat.invoke(header("slow"), bytes("300"));
    await new Promise((r) => setTimeout(r, 50));
    // The same key now names another module (helloworld-rs).
    const helloSha = await sha256Hex(HELLO_RS);
    await net.sat.deploy(manifest({ slow: helloSha }), await files(HELLO_RS));
    const fresh = await net.sat.invoke(header("slow"), bytes("new"));
    assert.ok(fresh.ok);
    assert.equal(text(fresh.output), "hello, new");
    const old = await inFlight;
    assert.ok(old.ok, JSON.stringify(old));
    assert.equal(text(old.output), "300");
  } finally {
    await net.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("a transfer larger than it announced breaks the protocol and ends the channel", async () => {
  const cacheDir = await Deno.makeTempDir();
  const net = await attach(cacheDir);
  try {
    const [first] = encodeWithBody(BLOB, 77, { sha256: "0".repeat(64), size: 2 }, bytes("abc"));
    await net.proxyChannel.send(first!);
    const error = await net.served;
    assert.match(String(error), /exceeds its announced size/);
    assert.equal(await net.sat.closed, undefined);
    assert.equal(net.sat.ended, true);
  } finally {
    await net.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
});
