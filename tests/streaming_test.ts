/**
 * Bodies and outputs larger than a message stream through one channel under flow control: a
 * slow reader slows its own stream only, limits hold mid-stream, and cancelling a stream
 * cancels its invocation.
 */
import assert from "node:assert/strict";
import {
  BodyError,
  INITIAL_WINDOW,
  type InvocationRunner,
  type InvokeHeader,
  SatConnection,
  serveInvocations,
} from "../src/invocation/mod.ts";
import { channelPair } from "./_channels.ts";

const MiB = 1024 * 1024;

function header(fn: string, size?: number): InvokeHeader {
  return {
    fn,
    method: "POST",
    url: "/",
    requestId: "r",
    headers: {},
    params: {},
    ...(size === undefined ? {} : { size }),
  };
}

/** Deterministic bytes: byte i of a stream is (i * 7) & 0xff. */
function pattern(from: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => ((from + i) * 7) & 0xff);
}

async function* chunksOf(total: number, chunk: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < total; at += chunk) yield pattern(at, Math.min(chunk, total - at));
}

async function attach(runner: InvocationRunner, maxBodyBytes = 64 * MiB) {
  const [satChannel, proxyChannel] = await channelPair();
  const served = serveInvocations(satChannel, ["count", "big", "small"], runner, {
    maxBodyBytes,
  });
  const sat = await SatConnection.accept(proxyChannel);
  return {
    sat,
    close: async () => {
      await sat.close();
      await served;
    },
  };
}

/** Reads a stream fully, checking it is `pattern(0, length)`. */
async function expectPattern(stream: ReadableStream<Uint8Array>, length: number) {
  let at = 0;
  for await (const chunk of stream) {
    assert.deepEqual(chunk, pattern(at, chunk.length), `bytes at ${at}`);
    at += chunk.length;
  }
  assert.equal(at, length);
}

Deno.test("a 24 MiB body streams to the runner and a 24 MiB output streams back", async () => {
  let seen = 0;
  let streamed = false;
  const net = await attach(async (h, body) => {
    if (h.fn === "count") {
      if (body instanceof Uint8Array) throw new Error("expected a stream");
      streamed = true;
      assert.equal(body.size, 24 * MiB);
      for await (const chunk of body.chunks) {
        assert.deepEqual(chunk, pattern(seen, chunk.length));
        seen += chunk.length;
      }
      return { ok: true, output: pattern(0, 24 * MiB) };
    }
    return { ok: true, output: new Uint8Array(0) };
  });
  try {
    const outcome = await net.sat.invokeStream(
      header("count", 24 * MiB),
      chunksOf(24 * MiB, 100_000),
    );
    assert.ok(outcome.ok && outcome.output instanceof ReadableStream);
    assert.equal(seen, 24 * MiB);
    assert.ok(streamed);
    await expectPattern(outcome.output, 24 * MiB);
  } finally {
    await net.close();
  }
});

Deno.test("an output nobody reads holds one window and stops only its own stream", async () => {
  let sent = 0;
  const net = await attach((h) => {
    if (h.fn === "big") {
      sent = 8 * MiB;
      return Promise.resolve({ ok: true, output: pattern(0, sent) });
    }
    return Promise.resolve({ ok: true, output: new TextEncoder().encode("quick") });
  });
  try {
    const big = await net.sat.invokeStream(header("big"), new Uint8Array(0));
    assert.ok(big.ok && big.output instanceof ReadableStream);
    // The big output sits unread; other invocations on the channel still answer at once.
    for (let i = 0; i < 20; i++) {
      const small = await net.sat.invoke(header("small"), new Uint8Array(0));
      assert.ok(small.ok);
      assert.equal(new TextDecoder().decode(small.output), "quick");
    }
    assert.equal(net.sat.inFlight, 1);
    // Reading it later still gives every byte, in order.
    await expectPattern(big.output, sent);
  } finally {
    await net.close();
  }
});

/** A runner that reads its whole body and answers nothing. */
const readsAll: InvocationRunner = async (_h, body) => {
  if (!(body instanceof Uint8Array)) { for await (const _ of body.chunks) { /* read it all */ } }
  return { ok: true, output: new Uint8Array(0) };
};

Deno.test("a streamed body longer than the sat's limit gets 413 mid-stream", async () => {
  const net = await attach(readsAll, 2 * MiB);
  try {
    const declared = await net.sat.invokeStream(header("count", 3 * MiB), chunksOf(3 * MiB, 65536));
    assert.deepEqual(declared, {
      ok: false,
      code: 413,
      message: `the request body exceeds ${2 * MiB} bytes`,
    });
    // Without a declared size, the limit holds as the chunks arrive.
    const undeclared = await net.sat.invokeStream(header("count"), chunksOf(3 * MiB, 65536));
    assert.equal(undeclared.ok, false);
    assert.equal((undeclared as { code: number }).code, 413);
  } finally {
    await net.close();
  }
});

Deno.test("cancelling an output stream cancels the invocation on the sat", async () => {
  let aborted!: (reason: unknown) => void;
  const sawAbort = new Promise((resolve) => (aborted = resolve));
  const net = await attach(async (_h, body, signal) => {
    signal.addEventListener("abort", () => aborted(signal.reason), { once: true });
    if (!(body instanceof Uint8Array)) {
      try {
        for await (const _ of body.chunks) { /* the proxy stops sending */ }
      } catch (error) {
        assert.ok(error instanceof BodyError);
      }
    }
    return { ok: true, output: pattern(0, 4 * INITIAL_WINDOW) };
  });
  try {
    const outcome = await net.sat.invokeStream(header("big"), new Uint8Array(0));
    assert.ok(outcome.ok && outcome.output instanceof ReadableStream);
    const reader = outcome.output.getReader();
    await reader.read();
    await reader.cancel(new Error("the client went away"));
    const reason = await sawAbort;
    assert.match(String(reason), /cancelled by the proxy/);
    assert.equal(net.sat.inFlight, 0);
  } finally {
    await net.close();
  }
});

/**
 * A body that copies `pattern` into the buffers the sender offers, recording each buffer, as a
 * BYOB reader of an HTTP body fills them.
 */
function patternFiller(total: number) {
  let at = 0;
  const buffers = new Set<ArrayBuffer>();
  let closed = false;
  return {
    buffers,
    get closed() {
      return closed;
    },
    fill(into: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
      buffers.add(into.buffer);
      // Odd-sized reads: a message takes several.
      const length = Math.min(into.length, total - at, 40_000);
      into.set(pattern(at, length));
      at += length;
      return Promise.resolve(into.subarray(0, length));
    },
    close() {
      closed = true;
    },
  };
}

Deno.test("a body read into the sender's buffers arrives whole, and the sender reuses them", async () => {
  let seen = 0;
  const net = await attach(async (_h, body) => {
    if (body instanceof Uint8Array) throw new Error("expected a stream");
    for await (const chunk of body.chunks) {
      assert.deepEqual(chunk, pattern(seen, chunk.length));
      seen += chunk.length;
    }
    return { ok: true, output: new TextEncoder().encode(String(seen)) };
  });
  try {
    const body = patternFiller(24 * MiB);
    const outcome = await net.sat.invokeStream(header("count", 24 * MiB), body);
    assert.ok(outcome.ok && outcome.output instanceof Uint8Array);
    assert.equal(new TextDecoder().decode(outcome.output), String(24 * MiB));
    // 384 messages went through at most a window's worth of buffers (one per 64 KiB in flight).
    assert.ok(body.buffers.size <= INITIAL_WINDOW / 65536 + 2, `${body.buffers.size} buffers`);
    assert.equal(body.closed, false);
  } finally {
    await net.close();
  }
});

Deno.test("a body read into the sender's buffers is closed when the sat stops wanting it", async () => {
  const net = await attach(readsAll, 2 * MiB);
  try {
    const body = patternFiller(8 * MiB);
    const outcome = await net.sat.invokeStream(header("count"), body);
    assert.equal((outcome as { code: number }).code, 413);
    // The proxy hears the 413 before it stops sending; give the sender a turn to see it.
    for (let i = 0; i < 50 && !body.closed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(body.closed, true);
  } finally {
    await net.close();
  }
});
