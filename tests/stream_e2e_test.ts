/**
 * 200 MiB bodies through the whole path (client, proxy, relay, sat, Wasm and back) in chunks
 * with back-pressure: the relay and the proxy hold a bounded amount whatever the size, and the
 * sat holds the body once, in the instance's memory. Limits are raised by flags, as a user
 * would. Figures (peak memory growth per process) are part of the assertion messages.
 */
import assert from "node:assert/strict";
import {
  type Network,
  startNetwork,
  startSat,
  stopNetwork,
  STREAM_DIRECTIVE,
  STREAM_RUNNABLES,
} from "./_network.ts";
import type { Service } from "./_services.ts";

const MiB = 1024 * 1024;
/**
 * Twice the 100 MiB of the goal, so that holding the body would show plainly against the
 * slack below.
 */
const SIZE = 200 * MiB;
/**
 * What any process may add beyond what it must hold: buffers, windows, JIT, and mostly garbage
 * not yet collected (V8 collects ArrayBuffers by external-memory pressure, some tens of MiB).
 */
const SLACK_MIB = 96;

/** A body whose byte i is (i * 31 + i / 4096) & 0xff: no run repeats. */
function body(size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >>> 12)) & 0xff;
  return bytes;
}

async function peaks(services: [string, Service][]) {
  return Object.fromEntries(
    await Promise.all(services.map(async ([name, s]) => [name, await s.memory()] as const)),
  );
}

async function streamingNetwork(): Promise<[Network, Service]> {
  const net = await startNetwork({
    directive: STREAM_DIRECTIVE,
    runnables: STREAM_RUNNABLES,
    proxyArgs: ["--max-body", String(2 * SIZE)],
  });
  const sat = startSat(
    net,
    `${net.satCommand} --workers 1 --max-body 400 --memory-limit 1024 --max-output 256 ` +
      "--time-limit 60000",
    { runnables: false },
  );
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const r = await fetch(`http://127.0.0.1:${net.httpPort}/tail`, { method: "POST", body: "hi" });
    if ((await r.text()) === "hi") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return [net, sat];
}

Deno.test("a 200 MiB body streams to the sat, which holds it once", async () => {
  const [net, sat] = await streamingNetwork();
  try {
    const services: [string, Service][] = [["relay", net.relay], ["proxy", net.proxy], [
      "sat",
      sat,
    ]];
    const data = body(SIZE);
    const before = await peaks(services);
    const started = performance.now();
    const response = await fetch(`http://127.0.0.1:${net.httpPort}/tail`, {
      method: "POST",
      body: data,
    });
    const tail = new Uint8Array(await response.arrayBuffer());
    const seconds = (performance.now() - started) / 1000;
    assert.equal(response.status, 200, new TextDecoder().decode(tail));
    assert.deepEqual(tail, data.subarray(SIZE - 16));
    const after = await peaks(services);
    const growth = (name: string) => (after[name]!.peakKiB - before[name]!.rssKiB) / 1024;
    const report = services.map(([name]) => `${name} +${Math.round(growth(name))} MiB`).join(
      ", ",
    ) + `; ${Math.round(SIZE / MiB / seconds)} MiB/s`;
    assert.ok(growth("relay") < SLACK_MIB, report);
    assert.ok(growth("proxy") < SLACK_MIB, report);
    assert.ok(growth("sat") < SIZE / MiB + SLACK_MIB, report);
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("a 200 MiB output streams back to the client; the proxy holds a window, not the body", async () => {
  const [net, sat] = await streamingNetwork();
  try {
    const data = body(SIZE);
    const before = await net.proxy.memory();
    const response = await fetch(`http://127.0.0.1:${net.httpPort}/echo`, {
      method: "POST",
      body: data,
    });
    assert.equal(response.status, 200);
    // Read it slowly at first: back-pressure must hold the sat, not fill the proxy.
    const reader = response.body!.getReader();
    let at = 0;
    let slow = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      assert.deepEqual(r.value, data.subarray(at, at + r.value.length), `bytes at ${at}`);
      at += r.value.length;
      if (slow++ < 20) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(at, SIZE);
    const after = await net.proxy.memory();
    const growth = (after.peakKiB - before.rssKiB) / 1024;
    assert.ok(growth < SLACK_MIB, `proxy +${Math.round(growth)} MiB`);
    void sat;
  } finally {
    await stopNetwork(net);
  }
});
