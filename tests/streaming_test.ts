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
import { BODY, decodeInvocationMessage, INVOKE } from "../src/invocation/invocation_codec.ts";
import { SendWindow } from "../src/invocation/_flow.ts";
import { sendWithBody } from "../src/invocation/_stream_sender.ts";
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
      sent = 2 * INITIAL_WINDOW; // more than the window: the sat waits for credit
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
  const net = await attach(async (_h, body, cancellation) => {
    cancellation.onCancel(aborted);
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

Deno.test("a streamed body goes out in full messages through reused buffers, each chunk copied before its source reuses it", async () => {
  const total = 24 * MiB;
  // The source hands out views of one buffer it refills, as the proxy's request bodies do.
  async function* source() {
    const buffer = new Uint8Array(40_000);
    for (let at = 0; at < total; at += buffer.length) {
      const length = Math.min(buffer.length, total - at);
      buffer.set(pattern(at, length));
      yield buffer.subarray(0, length);
    }
  }
  const window = new SendWindow();
  const buffers = new Set<ArrayBufferLike>();
  const sizes: number[] = [];
  let received = 0;
  let ended = false;
  const send = (message: Uint8Array) => {
    const decoded = decodeInvocationMessage(message);
    if (decoded.type === BODY) {
      assert.deepEqual(decoded.chunk, pattern(received, decoded.chunk.length), `at ${received}`);
      received += decoded.chunk.length;
      ended ||= decoded.end;
      if (!decoded.end) sizes.push(decoded.chunk.length);
      buffers.add(message.buffer);
    }
    // Settles a turn later, as a channel's send does once it has sealed the message; the
    // receiver grants the credit back then.
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        if (decoded.type === BODY) window.grant(decoded.chunk.length);
        resolve();
      }, 0)
    );
  };
  await sendWithBody(
    send,
    { type: INVOKE, id: 7, header: header("count", total) },
    source(),
    window,
    () => true,
  );
  assert.equal(received, total);
  assert.ok(ended);
  // Every message but the last is full, whatever the source's chunk size.
  assert.ok(sizes.slice(0, -1).every((size) => size === sizes[0]! && size > 65_000));
  // 385 messages went through at most a window's worth of buffers (one per 64 KiB in flight).
  assert.ok(buffers.size <= INITIAL_WINDOW / 65536 + 2, `${buffers.size} buffers`);
});

Deno.test("a streamed body's source is stopped when the sat stops wanting it", async () => {
  const net = await attach(readsAll, 2 * MiB);
  try {
    let stopped = false;
    const body = (async function* () {
      try {
        for (let at = 0; at < 8 * MiB; at += 65536) yield pattern(at, 65536);
      } finally {
        stopped = true;
      }
    })();
    const outcome = await net.sat.invokeStream(header("count"), body);
    assert.equal((outcome as { code: number }).code, 413);
    // The proxy hears the 413 before it stops sending; give the sender a turn to see it.
    for (let i = 0; i < 50 && !stopped; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(stopped, true);
  } finally {
    await net.close();
  }
});
