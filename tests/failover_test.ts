/**
 * Several sats behind one proxy: health checks over the channel, failover of invocations that
 * did not run, and no silent repeat of one that may have.
 */
import assert from "node:assert/strict";
import {
  bodyBytes,
  type InvocationRunner,
  type InvokeHeader,
  SatConnection,
  type SatConnectionOptions,
  serveInvocations,
  type ServeInvocationsOptions,
} from "../src/invocation/mod.ts";
import { encodeHello } from "../src/invocation/invocation_codec.ts";
import { createInvoker, InvocationFailure, SatRegistry } from "../src/proxy/mod.ts";
import { channelPair } from "./_channels.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);
const header: InvokeHeader = {
  fn: "hello",
  method: "POST",
  url: "/hello",
  requestId: "r",
  headers: {},
  params: {},
};

/** A real sat serving `runner` behind a real channel. */
async function sat(
  runner: InvocationRunner,
  options: ServeInvocationsOptions & SatConnectionOptions = {},
) {
  const [satChannel, proxyChannel] = await channelPair();
  const served = serveInvocations(satChannel, ["hello"], runner, options);
  const connection = await SatConnection.accept(proxyChannel, options);
  return {
    connection,
    satChannel,
    close: async () => {
      await connection.close();
      await served;
    },
  };
}

async function until(condition: () => boolean, ms = 5000): Promise<number> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - start;
}

const answer = (name: string): InvocationRunner => async (_h, body) => ({
  ok: true,
  output: bytes(`${name}: ${text(await bodyBytes(body))}`),
});

Deno.test("a sat that stops answering is not picked within a second, and later closed", async () => {
  const [satChannel, proxyChannel] = await channelPair();
  // A sat that says HELLO and then never reads again (hung, or its link is black-holed).
  await satChannel.send(encodeHello(["hello"]));
  const connection = await SatConnection.accept(proxyChannel, {
    pingIntervalMs: 100,
    unhealthyAfterMs: 1000,
    closeAfterMs: 2000,
  });
  const registry = new SatRegistry();
  registry.add(connection);
  try {
    assert.equal(registry.pick("hello"), connection);
    const unpicked = await until(() => registry.pick("hello") === undefined);
    assert.ok(unpicked <= 1500, `still picked after ${unpicked} ms`);
    const error = await connection.closed;
    assert.match(String(error), /did not answer health checks for 2000 ms/);
  } finally {
    await connection.close();
    await satChannel.close();
  }
});

Deno.test("a busy sat still answers its health checks", async () => {
  const busy = await sat(() => new Promise(() => {}), {
    pingIntervalMs: 50,
    unhealthyAfterMs: 300,
  });
  try {
    const running = busy.connection.invoke(header, bytes("x")).catch(() => {});
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(busy.connection.healthy, true);
    assert.equal(busy.connection.inFlight, 1);
    void running;
  } finally {
    await busy.close();
  }
});

Deno.test("an invocation a sat refuses without running goes to another sat", async () => {
  let fullRan = 0;
  // maxInFlight 0: this sat answers every invocation "not run" (at its limit).
  const full = await sat(() => {
    fullRan++;
    return Promise.resolve({ ok: true, output: bytes("full") });
  }, { maxInFlight: 0 });
  const spare = await sat(answer("spare"));
  const registry = new SatRegistry();
  registry.add(full.connection);
  registry.add(spare.connection);
  try {
    const invoke = createInvoker({ sats: registry, timeoutMs: 5000 });
    const outcome = await invoke("hello", header, bytes("x"));
    assert.ok(outcome.ok);
    assert.equal(text(outcome.output), "spare: x");
    assert.equal(fullRan, 0);

    // With no other sat left, the refusal is a clear 503.
    await spare.close();
    await until(() => registry.size === 1);
    await assert.rejects(
      invoke("hello", header, bytes("y")),
      (error: Error) =>
        error instanceof InvocationFailure && error.status === 503 && /tried 1/.test(error.message),
    );
  } finally {
    await full.close();
    await spare.close();
  }
});

Deno.test("an invocation that reached a sat is never repeated on another", async () => {
  let started!: () => void;
  const reached = new Promise<void>((resolve) => (started = resolve));
  const first = await sat(() => {
    started();
    return new Promise(() => {});
  });
  let secondRan = 0;
  const second = await sat(() => {
    secondRan++;
    return Promise.resolve({ ok: true, output: bytes("second") });
  });
  const registry = new SatRegistry();
  registry.add(first.connection);
  registry.add(second.connection);
  try {
    const invoke = createInvoker({ sats: registry, timeoutMs: 5000 });
    const pending = invoke("hello", header, bytes("once"));
    await reached;
    await first.satChannel.close(); // the sat dies with the invocation running
    await assert.rejects(
      pending,
      (error: Error) => error instanceof InvocationFailure && error.status === 502,
    );
    assert.equal(secondRan, 0);
  } finally {
    await first.close();
    await second.close();
  }
});
