import assert from "node:assert/strict";
import {
  allocBytes,
  BatchedFrameWriter,
  concatBytes,
  ConnTransport,
  copyBytes,
  DATA_HEADER_LEN,
  decodeUtf8Strict,
  encodeDataFrame,
  encodeFrame,
  encodeRelayFrame,
  FrameDecoder,
  FrameError,
  LENGTH_PREFIX_LEN,
  MAX_LINK_MESSAGE_LEN,
  MAX_SLAB_ALLOC,
  memoryTransportPair,
  TransportClosedError,
  WRITE_BATCH_LEN,
} from "../src/wire/mod.ts";

Deno.test("FrameDecoder reassembles frames delivered one byte at a time", () => {
  const bodies = [
    new Uint8Array(0),
    Uint8Array.of(1, 2, 3),
    crypto.getRandomValues(new Uint8Array(5000)),
  ];
  const stream = new Uint8Array(bodies.reduce((n, b) => n + 4 + b.length, 0));
  let offset = 0;
  for (const body of bodies) {
    stream.set(encodeFrame(body), offset);
    offset += 4 + body.length;
  }
  const decoder = new FrameDecoder(10_000);
  const out: Uint8Array[] = [];
  for (const byte of stream) {
    decoder.push(Uint8Array.of(byte));
    for (let f = decoder.next(); f; f = decoder.next()) out.push(f);
  }
  assert.deepEqual(out, bodies);
  assert.equal(decoder.buffered, 0);
});

Deno.test("FrameDecoder refuses an oversized length before buffering the body", () => {
  const decoder = new FrameDecoder(100);
  decoder.push(Uint8Array.of(0, 0, 0, 101));
  assert.throws(() => decoder.next(), FrameError);
  const exact = new FrameDecoder(100);
  exact.push(encodeFrame(new Uint8Array(100)));
  assert.equal(exact.next()?.length, 100);
});

Deno.test("a memory transport pair delivers in order and signals close to both ends", async () => {
  const [a, b] = memoryTransportPair();
  await a.send(Uint8Array.of(1));
  await a.send(Uint8Array.of(2));
  assert.deepEqual(await b.receive(), Uint8Array.of(1));
  assert.deepEqual(await b.receive(), Uint8Array.of(2));
  const pending = a.receive();
  b.close();
  assert.equal(await pending, undefined);
  await assert.rejects(() => a.send(Uint8Array.of(3)), TransportClosedError);
});

Deno.test("an oversized frame on TCP closes that connection only", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connect = () => Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const badClient = await connect();
  const bad = new ConnTransport(await listener.accept(), { maxMessageLen: 1024 });
  const goodClient = new ConnTransport(await connect(), { maxMessageLen: 1024 });
  const good = new ConnTransport(await listener.accept(), { maxMessageLen: 1024 });
  listener.close();

  await badClient.write(Uint8Array.of(0, 0, 4, 1)); // announces 1025 bytes
  assert.equal(await bad.receive(), undefined);
  assert.ok(bad.error instanceof FrameError);
  assert.equal(await badClient.read(new Uint8Array(1)), null); // the server closed it
  badClient.close();

  await goodClient.send(new TextEncoder().encode("still here"));
  assert.equal(new TextDecoder().decode(await good.receive()), "still here");
  goodClient.close();
  assert.equal(await good.receive(), undefined);
  good.close();
});

Deno.test("FrameDecoder.nextView gives the same bodies as next, without copying", () => {
  const decoder = new FrameDecoder(100);
  const first = Uint8Array.of(1, 2, 3);
  const second = Uint8Array.of(4);
  decoder.push(concatBytes([encodeFrame(first), encodeFrame(second)]));
  const view = decoder.nextView()!;
  assert.deepEqual(view, first);
  assert.deepEqual(decoder.next(), second);
  assert.equal(decoder.nextView(), undefined);
  assert.equal(decoder.buffered, 0);
});

Deno.test("FrameDecoder.feed reads whole frames in place and copies only a frame cut by a read", () => {
  const decoder = new FrameDecoder(100);
  const frames = [Uint8Array.of(1, 2, 3), Uint8Array.of(4), Uint8Array.of(5, 6, 7, 8, 9)];
  const stream = concatBytes(frames.map((f) => encodeFrame(f)));
  // One read buffer, reused: the first read holds two whole frames and half of the third.
  const buffer = new Uint8Array(64);
  const cut = 7 + 5 + 4;
  buffer.set(stream.subarray(0, cut));
  decoder.feed(buffer.subarray(0, cut));
  const first = decoder.nextView()!;
  assert.equal(first.buffer, buffer.buffer, "a whole frame is read where it lies");
  assert.deepEqual(first, frames[0]);
  assert.deepEqual(decoder.nextView(), frames[1]);
  assert.equal(decoder.nextView(), undefined);
  assert.equal(decoder.buffered, 4);
  // The next read overwrites the buffer: the half frame was copied out.
  buffer.fill(0xee);
  buffer.set(stream.subarray(cut));
  decoder.feed(buffer.subarray(0, stream.length - cut));
  assert.deepEqual(decoder.nextView(), frames[2]);
  assert.equal(decoder.nextView(), undefined);
  assert.equal(decoder.buffered, 0);
  // A length over the maximum is refused before its body is read.
  decoder.feed(Uint8Array.of(0, 0, 0, 101, 1, 2));
  assert.throws(() => decoder.nextView(), FrameError);
});

Deno.test("BatchedFrameWriter joins the frames of one turn into one write, in order", async () => {
  const writes: Uint8Array[] = [];
  const sink = {
    write: (bytes: Uint8Array) => {
      writes.push(bytes.slice());
      return Promise.resolve(bytes.length);
    },
  };
  const writer = new BatchedFrameWriter(sink, { onError: () => assert.fail("no error") });
  const reused = Uint8Array.of(7, 7);
  writer.writeFrame(encodeRelayFrame({ type: "ping" }));
  writer.writeBody(reused);
  reused.fill(0); // the writer copied it: the caller may reuse its bytes at once
  writer.writeDataFrame(5, Uint8Array.of(9, 8, 7));
  assert.equal(writer.queuedBytes, 5 + 6 + 4 + 5 + 3);
  await writer.drain();
  assert.deepEqual(writes, [
    concatBytes([
      encodeRelayFrame({ type: "ping" }),
      encodeFrame(Uint8Array.of(7, 7)),
      encodeDataFrame(5, Uint8Array.of(9, 8, 7)),
    ]),
  ]);
  assert.equal(writer.queuedBytes, 0);
  // A sink that takes a few bytes at a time still gets everything, in order.
  const slow: Uint8Array[] = [];
  const slowWriter = new BatchedFrameWriter({
    write: (bytes: Uint8Array) => {
      slow.push(bytes.slice(0, 3));
      return Promise.resolve(Math.min(3, bytes.length));
    },
  }, { onError: () => assert.fail("no error") });
  const big = crypto.getRandomValues(new Uint8Array(40_000));
  slowWriter.writeDataFrame(1, big);
  await Promise.resolve();
  slowWriter.writeBody(Uint8Array.of(1)); // queued while the first batch is being written
  await slowWriter.drain();
  assert.deepEqual(
    concatBytes(slow),
    concatBytes([encodeDataFrame(1, big), encodeFrame(Uint8Array.of(1))]),
  );
  assert.throws(
    () => slowWriter.writeDataFrame(1, new Uint8Array(MAX_LINK_MESSAGE_LEN + 1)),
    RangeError,
  );
});

Deno.test("BatchedFrameWriter streams a burst through reused buffers, and lets them go when idle", async () => {
  let written = 0;
  const writer = new BatchedFrameWriter({
    write: (bytes: Uint8Array) => {
      written += bytes.length;
      return Promise.resolve(bytes.length);
    },
  }, { onError: () => assert.fail("no error") });
  const message = new Uint8Array(60_000);
  const frame = LENGTH_PREFIX_LEN + DATA_HEADER_LEN + message.length;
  for (let burst = 0; burst < 3; burst++) {
    for (let i = 0; i < 16; i++) writer.writeDataFrame(1, message);
    assert.equal(writer.queuedBytes, 16 * frame);
    await writer.drain();
    // Every buffer the burst filled is kept for the next one, the first burst's too: a buffer
    // grown by doubling stops at WRITE_BATCH_LEN, which is what is kept.
    assert(writer.retainedBytes >= 16 * frame, `retained ${writer.retainedBytes}`);
  }
  assert.equal(written, 3 * 16 * frame);
  assert.equal(writer.queuedBytes, 0);
  // A burst of 1 MiB left its buffers for the next one, then an idle second lets all but one go.
  assert(writer.retainedBytes > WRITE_BATCH_LEN, `retained ${writer.retainedBytes}`);
  await new Promise((resolve) => setTimeout(resolve, 2_200));
  assert(writer.retainedBytes <= WRITE_BATCH_LEN, `retained ${writer.retainedBytes}`);
  writer.close();
});

Deno.test("decodeUtf8Strict decodes exactly as a fatal TextDecoder, and throws where it throws", () => {
  const fatal = new TextDecoder("utf-8", { fatal: true });
  const outcome = (decode: (bytes: Uint8Array) => string, bytes: Uint8Array) => {
    try {
      return decode(bytes);
    } catch (error) {
      assert.ok(error instanceof TypeError, `a TypeError, not ${error}`);
      return "threw";
    }
  };
  const encoder = new TextEncoder();
  const samples = [
    encoder.encode('{"fn":"helloworld-rs","headers":{"host":"127.0.0.1"}}'),
    encoder.encode("grüße, 世界, 🚀"),
    encoder.encode("a genuine \uFFFD stays"),
    Uint8Array.of(0xef, 0xbb, 0xbf, 0x68, 0x69), // a BOM, dropped by both
    Uint8Array.of(0x68, 0x80, 0x69), // a lone continuation byte
    Uint8Array.of(0xe4, 0xb8), // a truncated sequence
    Uint8Array.of(0xc0, 0xaf), // an overlong "/"
    Uint8Array.of(0xed, 0xa0, 0x80), // an encoded surrogate
    Uint8Array.of(0xef, 0xbf, 0xbd, 0xff), // U+FFFD, then a byte never valid
    new Uint8Array(0),
  ];
  assert.equal(decodeUtf8Strict(samples[2]!), "a genuine \uFFFD stays");
  assert.equal(outcome(decodeUtf8Strict, samples[4]!), "threw");
  // Random bytes, mostly ASCII with some high bytes: valid and invalid texts both.
  for (let i = 0; i < 2000; i++) {
    const bytes = crypto.getRandomValues(new Uint8Array(1 + (i % 40)));
    for (let j = 0; j < bytes.length; j++) if (bytes[j]! % 3 !== 0) bytes[j]! &= 0x7f;
    samples.push(bytes);
  }
  for (const bytes of samples) {
    assert.equal(
      outcome(decodeUtf8Strict, bytes),
      outcome((b) => fatal.decode(b), bytes),
      `${bytes}`,
    );
  }
});

Deno.test("copyBytes copies into a buffer of its own, or into what the allocator gives", () => {
  const source = Uint8Array.of(1, 2, 3, 4, 5).subarray(1, 4);
  const own = copyBytes(source);
  assert.deepEqual([...own], [2, 3, 4]);
  assert.equal(own.byteOffset, 0);
  assert.equal(own.buffer.byteLength, 3);
  const cut = copyBytes(source, allocBytes);
  assert.deepEqual([...cut], [2, 3, 4]);
  assert.ok(cut.buffer.byteLength > 3, "a view of a slab");
  source.fill(9);
  assert.deepEqual([...own], [2, 3, 4], "copies, not views of the source");
  assert.deepEqual([...cut], [2, 3, 4]);
});

Deno.test("allocBytes hands out zeroed, separate arrays; small ones share slabs, large ones not", () => {
  const small = Array.from({ length: 300 }, (_, i) => allocBytes(1 + (i * 37) % MAX_SLAB_ALLOC));
  for (const bytes of small) {
    assert.ok(bytes.every((b) => b === 0), "a new array is all zero");
    assert.equal(bytes.byteOffset % 8, 0, "each starts 8-aligned");
    bytes.fill(0xff);
  }
  // Filling each did not touch another: no two overlap.
  const bySlab = Map.groupBy(small, (bytes) => bytes.buffer);
  assert.ok(bySlab.size < small.length / 4, "small arrays share slabs");
  for (const views of bySlab.values()) {
    const sorted = views.toSorted((a, b) => a.byteOffset - b.byteOffset);
    for (let i = 1; i < sorted.length; i++) {
      assert.ok(sorted[i - 1]!.byteOffset + sorted[i - 1]!.length <= sorted[i]!.byteOffset);
    }
  }
  const large = allocBytes(MAX_SLAB_ALLOC + 1);
  assert.equal(large.byteOffset, 0);
  assert.equal(large.buffer.byteLength, MAX_SLAB_ALLOC + 1);
  assert.equal(allocBytes(0).length, 0);
});
