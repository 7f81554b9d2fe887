import assert from "node:assert/strict";
import {
  ConnTransport,
  encodeFrame,
  FrameDecoder,
  FrameError,
  memoryTransportPair,
  TransportClosedError,
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
