// deno-lint-ignore-file no-console -- a benchmark report: printing is its job.
/**
 * The invocation path in one process, without HTTP or Wasm: the proxy's SatConnection → a real
 * relay on loopback TCP → the sat's serveInvocations (a runner that answers `hello, <body>`)
 * and back, with CONCURRENCY invocations in flight. Reports invocations/s and CPU µs per
 * invocation (this process's user + system time, all three parts included): the figure to
 * compare before and after a change to the wire, relay, link, channel or invocation layers,
 * steadier than the end-to-end load on a shared machine.
 *
 * Run: deno run --allow-net=127.0.0.1 --allow-read --allow-write bench/invocation_path.ts [N]
 *
 * @module
 */

import { numberArgs } from "./_args.ts";
import { Identity, SecureChannel, TrustPolicy } from "../src/channel/mod.ts";
import { SatConnection, serveInvocations } from "../src/invocation/mod.ts";
import { connectRelay } from "../src/link/mod.ts";
import { RelayServer } from "../src/relay/mod.ts";

const TOTAL = numberArgs(
  "deno run --allow-net=127.0.0.1 --allow-read --allow-write bench/invocation_path.ts",
  "Invocations through SatConnection, a relay over TCP and serveInvocations, in one process.",
  [{ name: "N", help: "invocations measured", default: 50_000, integer: true }],
)[0]!;
const CONCURRENCY = 32;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const BODY = encoder.encode("my friend");
const HELLO = encoder.encode("hello, ");
const HEADER = {
  fn: "helloworld-rs",
  method: "POST",
  url: "/hello",
  requestId: "0000-1",
  headers: { host: "127.0.0.1:8080", "content-length": "9" },
  params: {},
};

function cpuMicros(): number {
  // deno-lint-ignore no-explicit-any -- node:process is not typed for cpuUsage here.
  const usage = (globalThis as any).process?.cpuUsage?.();
  return usage ? usage.user + usage.system : NaN;
}

const stateDir = await Deno.makeTempDir({ prefix: "stratos-invocation-bench-" });
const relay = await RelayServer.start({ hostname: "127.0.0.1", port: 0, stateDir });
const where = { hostname: "127.0.0.1", port: relay.addr.port };
const proxyIdentity = Identity.generate();
const satIdentity = Identity.generate();
const proxyNet = await connectRelay(where);
const satNet = await connectRelay(where);
const listener = await proxyNet.listen(proxyIdentity);
const [proxyChannel, satChannel] = await Promise.all([
  (async () =>
    SecureChannel.respond((await listener.accept())!, {
      identity: proxyIdentity,
      trust: await TrustPolicy.open({ allow: [satIdentity.identifier] }),
    }))(),
  (async () =>
    SecureChannel.initiate(await satNet.connect(listener.address), {
      identity: satIdentity,
      trust: await TrustPolicy.open({ allow: [proxyIdentity.identifier] }),
    }))(),
]);
const served = serveInvocations(satChannel, ["helloworld-rs"], (_header, body) => {
  if (!(body instanceof Uint8Array)) throw new TypeError("a small body comes whole");
  const output = new Uint8Array(HELLO.length + body.length);
  output.set(HELLO);
  output.set(body, HELLO.length);
  return Promise.resolve({ ok: true, output });
});
const sat = await SatConnection.accept(proxyChannel);

async function run(total: number): Promise<{ perSecond: number; cpuPerCall: number }> {
  let left = total;
  const cpu0 = cpuMicros();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (left-- > 0) {
      const outcome = await sat.invoke(HEADER, BODY);
      if (!outcome.ok || decoder.decode(outcome.output) !== "hello, my friend") {
        throw new Error("wrong answer");
      }
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { perSecond: total / seconds, cpuPerCall: (cpuMicros() - cpu0) / total };
}

await run(Math.min(5_000, TOTAL)); // warm-up
const result = await run(TOTAL);
console.log(
  `invocation path (SatConnection → relay over TCP → serveInvocations), ${CONCURRENCY} in flight, ` +
    `${TOTAL} calls: ${result.perSecond.toFixed(0)} calls/s, ` +
    `${result.cpuPerCall.toFixed(1)} µs CPU per call (proxy + relay + sat in one process)`,
);
await sat.close();
await served;
proxyNet.close();
satNet.close();
await Promise.all([proxyNet.closed, satNet.closed]);
await relay.close();
await Deno.remove(stateDir, { recursive: true });
