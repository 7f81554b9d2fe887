/**
 * Bad links and dying processes: a disruptive pass-through between each node and the relay
 * (delay with jitter, 64 kbit/s, 1-byte writes, random closes), and chaos (the relay, the proxy
 * or one of two sats killed and restarted under load). Every answer must be the right one or a
 * clear HTTP error, nothing may hang, and service must come back once the fault ends. Times are
 * asserted at five times their goal and the measured value is part of the message.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Disruption, DisruptiveTap } from "./_disruptive_tap.ts";
import { type Network, startNetwork, startSat, stopNetwork } from "./_network.ts";
import { Service } from "./_services.ts";

/** With STRATOS_REPORT=1, one line of figures per scenario on stderr (for notes). */
function report(scenario: string, figures: Record<string, unknown>): void {
  if (Deno.env.get("STRATOS_REPORT") !== "1") return;
  Deno.stderr.writeSync(
    new TextEncoder().encode(`chaos: ${scenario}: ${JSON.stringify(figures)}\n`),
  );
}

/** Errors a client may get while the network is hurt: clear, in Atmo's JSON shape. */
const CLEAR_ERRORS = new Set([502, 503, 504]);
/** No request may take longer than this, whatever the fault. */
const REQUEST_BOUND_MS = 30_000;

interface LoadResult {
  ok: number;
  clearErrors: number;
  wrong: string[];
}

/**
 * Requests, `concurrency` at a time, `total` of them or until `until` settles; each must be
 * right or a clear error.
 */
async function load(
  net: Network,
  amount: number | Promise<unknown>,
  concurrency: number,
): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, clearErrors: 0, wrong: [] };
  let next = 0;
  let stopped = false;
  if (typeof amount !== "number") amount.finally(() => (stopped = true));
  const more = () => typeof amount === "number" ? next < amount : !stopped;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (more()) {
      const n = next++;
      const started = performance.now();
      try {
        const response = await fetch(`http://127.0.0.1:${net.httpPort}/hello`, {
          method: "POST",
          body: `friend ${n}`,
          signal: AbortSignal.timeout(REQUEST_BOUND_MS),
        });
        const text = await response.text();
        if (response.status === 200 && text === `hello, friend ${n}`) result.ok++;
        else if (CLEAR_ERRORS.has(response.status) && JSON.parse(text).status === response.status) {
          result.clearErrors++;
        } else result.wrong.push(`${response.status} ${text}`);
      } catch (error) {
        result.wrong.push(
          `request ${n} failed after ${Math.round(performance.now() - started)} ms: ${error}`,
        );
      }
    }
  }));
  return result;
}

/** Time until `count` requests in a row succeed (recovery), at most `boundMs`. */
async function recovery(net: Network, boundMs: number, count = 10): Promise<number> {
  const started = performance.now();
  let streak = 0;
  while (streak < count) {
    assert.ok(
      performance.now() - started < boundMs,
      `no recovery within ${boundMs} ms (streak ${streak})`,
    );
    const response = await fetch(`http://127.0.0.1:${net.httpPort}/hello`, {
      method: "POST",
      body: "back",
      signal: AbortSignal.timeout(REQUEST_BOUND_MS),
    });
    const text = await response.text();
    streak = response.status === 200 && text === "hello, back" ? streak + 1 : 0;
    if (streak === 0) await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - started;
}

async function disruptedNetwork(): Promise<[Network, DisruptiveTap[]]> {
  const net = await startNetwork({ tap: "disruptive" });
  startSat(net, net.satCommand);
  assert.equal((await recovery(net, 30_000, 1)) >= 0, true);
  return [net, net.taps as DisruptiveTap[]];
}

const DISRUPTIONS: [string, Disruption, number, number][] = [
  ["delay 20 ms with 30 ms jitter", { kind: "delay", ms: 20, jitterMs: 30 }, 60, 8],
  ["64 kbit/s", { kind: "throttle", bitsPerSecond: 64_000 }, 24, 4],
  ["1-byte writes", { kind: "split" }, 40, 8],
  ["random connection closes", { kind: "close", probability: 0.02 }, 80, 8],
];

for (const [name, disruption, total, concurrency] of DISRUPTIONS) {
  Deno.test(`under ${name}, every answer is right or a clear error, and service recovers`, async () => {
    const [net, taps] = await disruptedNetwork();
    try {
      for (const tap of taps) tap.mode = disruption;
      const result = await load(net, total, concurrency);
      assert.deepEqual(result.wrong, [], JSON.stringify(result));
      if (disruption.kind !== "close") {
        // Slow or fragmented links lose nothing: every request is answered right.
        assert.equal(result.ok, total, JSON.stringify(result));
      } else {
        assert.ok(taps.some((t) => t.closedByTap > 0), "the tap closed no connection");
      }
      for (const tap of taps) tap.mode = { kind: "none" };
      const ms = await recovery(net, 10_000);
      report(name, { ...result, wrong: result.wrong.length, recoveryMs: Math.round(ms) });
      assert.ok(ms < 10_000, `recovered in ${Math.round(ms)} ms`);
    } finally {
      await stopNetwork(net);
    }
  });
}

Deno.test("relay killed under load: requests get 503 quickly, none hang; back within 2 s of its return", async () => {
  const net = await startNetwork();
  try {
    startSat(net, net.satCommand);
    await recovery(net, 30_000, 1);
    let outage!: () => void;
    const loading = load(net, new Promise<void>((resolve) => (outage = resolve)), 8);
    await new Promise((r) => setTimeout(r, 300));
    net.relay.kill("SIGKILL");
    await net.relay.exited();
    // During the outage: quick, clear refusals.
    const started = performance.now();
    const during = await fetch(`http://127.0.0.1:${net.httpPort}/hello`, {
      method: "POST",
      body: "x",
    });
    await during.text();
    const answeredIn = performance.now() - started;
    assert.ok([502, 503].includes(during.status), `status ${during.status}`);
    assert.ok(answeredIn < 5000, `answered in ${Math.round(answeredIn)} ms during the outage`);
    await new Promise((r) => setTimeout(r, 300));
    outage();
    const result = await loading;
    assert.ok(result.ok > 0 && result.clearErrors > 0, JSON.stringify(result));
    assert.deepEqual(result.wrong, [], JSON.stringify(result));

    const relay = Service.start("relay", ["--listen", `127.0.0.1:${net.relayPort}`], {
      STRATOS_HOME: join(net.home, "relay-home"),
    });
    net.services.push(relay);
    await relay.line(/^listening on /);
    const ms = await recovery(net, 10_000);
    report("relay killed", {
      ...result,
      wrong: result.wrong.length,
      outageAnswerMs: Math.round(answeredIn),
      recoveryMs: Math.round(ms),
    });
    assert.ok(ms < 10_000, `recovered in ${Math.round(ms)} ms (goal 2000)`);
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("one of two sats killed under load: no wrong answer, the other keeps serving", async () => {
  const net = await startNetwork();
  try {
    const first = startSat(net, net.satCommand, { home: "sat-a" });
    await recovery(net, 30_000, 1);
    const fresh = (await net.proxy.line(
      /^sat command: (.*)$/,
      20_000,
      net.proxy.lines.findIndex((l) => l.startsWith("sat command:")) + 1,
    ))[1]!;
    startSat(net, fresh, { home: "sat-b" });
    const deadline = Date.now() + 20_000;
    while (!/"sats connected".*"count":2|count=2/.test(net.proxy.stderr) && Date.now() < deadline) {
      const metrics = await (await fetch(`http://127.0.0.1:${net.httpPort}/metrics`)).text();
      if (/^stratos_sats_connected 2$/m.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    let done!: () => void;
    const loading = load(net, new Promise<void>((resolve) => (done = resolve)), 8);
    await new Promise((r) => setTimeout(r, 300));
    first.kill("SIGKILL");
    await first.exited();
    await new Promise((r) => setTimeout(r, 500));
    done();
    const result = await loading;
    assert.deepEqual(result.wrong, [], JSON.stringify(result));
    // Only invocations in flight on the killed sat may fail (502); the rest are served.
    assert.ok(result.clearErrors <= 8 && result.ok > 0, JSON.stringify(result));
    const ms = await recovery(net, 10_000);
    report("one of two sats killed", {
      ...result,
      wrong: result.wrong.length,
      recoveryMs: Math.round(ms),
    });
    assert.ok(ms < 10_000, `recovered in ${Math.round(ms)} ms`);
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("proxy killed and restarted under load: sats reattach by themselves", async () => {
  const net = await startNetwork();
  try {
    startSat(net, net.satCommand, { runnables: false });
    await recovery(net, 30_000, 1);
    net.proxy.kill("SIGKILL");
    await net.proxy.exited();
    const proxy = Service.start("proxy", [
      "--relay",
      `127.0.0.1:${net.relayPort}`,
      "--http",
      `127.0.0.1:${net.httpPort}`,
      "--directive",
      net.directive,
    ], { STRATOS_HOME: join(net.home, "proxy-home") });
    net.services.splice(net.services.indexOf(net.proxy), 1, proxy);
    net.proxy = proxy;
    await proxy.line(/^FWD_/);
    const ms = await recovery(net, 10_000);
    assert.ok(ms < 10_000, `served again ${Math.round(ms)} ms after the new proxy registered`);
    const result = await load(net, 100, 8);
    report("proxy killed and restarted", {
      ...result,
      wrong: result.wrong.length,
      servedAgainMs: Math.round(ms),
    });
    assert.equal(result.ok, 100, JSON.stringify(result));
  } finally {
    await stopNetwork(net);
  }
});
