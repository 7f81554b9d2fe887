import assert from "node:assert/strict";
import { BACKENDS, nativeBackend } from "../src/channel/backends.ts";
import type { CryptoBackend } from "../src/channel/crypto_backend.ts";
import { HandshakeState } from "../src/channel/handshake_state.ts";
import {
  FRAME_BATCH,
  FRAME_HEADER_LEN,
  MAX_FRAME_LEN,
  MAX_PAYLOAD_LEN,
  SessionClosedError,
  TransportSession,
  type TransportSessionOptions,
} from "../src/channel/transport_session.ts";

const EMPTY = new Uint8Array(0);
const bytes = (text: string) => new TextEncoder().encode(text);

function sessions(
  options: TransportSessionOptions = {},
  backend: CryptoBackend = nativeBackend,
): [TransportSession, TransportSession] {
  const protocol = "Noise_NN_25519_ChaChaPoly_SHA256";
  const i = new HandshakeState(protocol, true, { backend });
  const r = new HandshakeState(protocol, false, { backend });
  r.readMessage(i.writeMessage(EMPTY));
  i.readMessage(r.writeMessage(EMPTY));
  return [new TransportSession(i.split(), options), new TransportSession(r.split(), options)];
}

function data(result: ReturnType<TransportSession["open"]>): string {
  assert.equal(result.kind, "data");
  return new TextDecoder().decode((result as { payload: Uint8Array }).payload);
}

Deno.test("frames round-trip in both directions on every backend", () => {
  for (const backend of BACKENDS) {
    const [a, b] = sessions({}, backend);
    assert.equal(data(b.open(a.seal(bytes("ping")))), "ping");
    assert.equal(data(a.open(b.seal(bytes("pong")))), "pong");
  }
});

Deno.test("random payloads of random sizes round-trip", () => {
  const [a, b] = sessions();
  for (let i = 0; i < 300; i++) {
    const size = i < 3
      ? [0, 1, MAX_PAYLOAD_LEN][i]!
      : Math.floor(Math.random() ** 3 * MAX_PAYLOAD_LEN);
    const payload = new Uint8Array(size);
    for (let off = 0; off < size; off += 65536) {
      crypto.getRandomValues(payload.subarray(off, Math.min(size, off + 65536)));
    }
    const [from, to] = i % 2 ? [a, b] : [b, a];
    const frame = from.seal(payload);
    assert.ok(frame.length <= MAX_FRAME_LEN);
    const opened = to.open(frame);
    assert.equal(opened.kind, "data");
    assert.deepEqual((opened as { payload: Uint8Array }).payload, payload);
  }
});

Deno.test("a replayed frame is dropped and never delivered twice; the session goes on", () => {
  const [a, b] = sessions();
  const frame = a.seal(bytes("once"));
  assert.equal(data(b.open(frame)), "once");
  assert.deepEqual(b.open(frame), { kind: "dropped", why: "duplicate" });
  assert.deepEqual(b.open(frame.slice()), { kind: "dropped", why: "duplicate" });
  assert.equal(data(b.open(a.seal(bytes("next")))), "next");
  assert.equal(b.ended, false);
});

Deno.test("frames reordered within the window are each accepted exactly once", () => {
  const [a, b] = sessions({ replayWindow: 64, rekeyInterval: 1024 });
  const frames = Array.from({ length: 64 }, (_, i) => a.seal(bytes(`m${i}`)));
  const order = [...frames.keys()].sort(() => Math.random() - 0.5);
  const delivered = order.map((i) => data(b.open(frames[i]!)));
  assert.deepEqual(delivered.sort(), frames.map((_, i) => `m${i}`).sort());
  for (const frame of frames) assert.equal(b.open(frame).kind, "dropped");
});

Deno.test("a frame older than the replay window is dropped as too old", () => {
  const [a, b] = sessions({ replayWindow: 32, rekeyInterval: 1024 });
  const old = a.seal(bytes("late"));
  for (let i = 0; i < 32; i++) data(b.open(a.seal(bytes(`${i}`))));
  assert.deepEqual(b.open(old), { kind: "dropped", why: "too-old" });
  assert.equal(b.ended, false);
  // One position newer is still inside the window.
  const [c, d] = sessions({ replayWindow: 32, rekeyInterval: 1024 });
  const edge = c.seal(bytes("edge"));
  for (let i = 0; i < 31; i++) data(d.open(c.seal(bytes(`${i}`))));
  assert.equal(data(d.open(edge)), "edge");
});

Deno.test("both sides rekey every interval and reordering across the boundary still works", () => {
  const [a, b] = sessions({ replayWindow: 32, rekeyInterval: 32 });
  const frames = Array.from({ length: 200 }, (_, i) => a.seal(bytes(`m${i}`)));
  // Deliver in pairs swapped: 1,0,3,2,... crosses every epoch boundary out of order.
  for (let i = 0; i < frames.length; i += 2) {
    assert.equal(data(b.open(frames[i + 1]!)), `m${i + 1}`);
    assert.equal(data(b.open(frames[i]!)), `m${i}`);
  }
  // A receiver that has seen nothing yet derives epoch 1's key for epoch 1's first frame.
  const [c, d] = sessions({ replayWindow: 32, rekeyInterval: 32 });
  for (let i = 0; i < 32; i++) c.seal(EMPTY);
  assert.equal(data(d.open(c.seal(bytes("x")))), "x");
});

Deno.test("a frame from a sender that did not rekey fails authentication", () => {
  // Same keys, but the sender never rekeys: its frame 32 uses epoch 0's key.
  const protocol = "Noise_NN_25519_ChaChaPoly_SHA256";
  const i = new HandshakeState(protocol, true, { backend: nativeBackend });
  const r = new HandshakeState(protocol, false, { backend: nativeBackend });
  r.readMessage(i.writeMessage(EMPTY));
  i.readMessage(r.writeMessage(EMPTY));
  const sender = new TransportSession(i.split(), { replayWindow: 32, rekeyInterval: 1 << 20 });
  const receiver = new TransportSession(r.split(), { replayWindow: 32, rekeyInterval: 32 });
  for (let n = 0; n < 32; n++) data(receiver.open(sender.seal(bytes(`${n}`))));
  assert.throws(() => receiver.open(sender.seal(bytes("32"))), SessionClosedError);
  assert.equal(receiver.ended, true);
});

Deno.test("a flipped bit anywhere in a frame ends the session and drops its keys", () => {
  const probe = sessions()[0].seal(bytes("hello"));
  for (let index = 0; index < probe.length; index++) {
    const [a, b] = sessions();
    const frame = a.seal(bytes("hello"));
    frame[index]! ^= 0x80;
    assert.throws(() => b.open(frame), SessionClosedError, `byte ${index}`);
    assert.equal(b.ended, true);
    // After the failure nothing opens, not even a valid frame.
    assert.throws(() => b.open(a.seal(bytes("after"))), SessionClosedError);
  }
});

Deno.test("truncated and oversized frames end the session", async (t) => {
  for (const cut of [0, 1, FRAME_HEADER_LEN, FRAME_HEADER_LEN + 15]) {
    await t.step(`truncated to ${cut} bytes`, () => {
      const [a, b] = sessions();
      const frame = a.seal(bytes("hello"));
      assert.throws(() => b.open(frame.subarray(0, cut)), SessionClosedError);
      assert.equal(b.endError?.reason, "malformed-frame");
    });
  }
  await t.step("a tag cut short fails authentication", () => {
    const [a, b] = sessions();
    const frame = a.seal(bytes("hello"));
    assert.throws(() => b.open(frame.subarray(0, frame.length - 1)), SessionClosedError);
    assert.equal(b.endError?.reason, "authentication-failed");
  });
  await t.step("oversized", () => {
    const [, b] = sessions();
    assert.throws(() => b.open(new Uint8Array(MAX_FRAME_LEN + 1)), SessionClosedError);
    assert.equal(b.ended, true);
  });
  await t.step("a payload too large to seal is a RangeError and the session goes on", () => {
    const [a, b] = sessions();
    assert.throws(() => a.seal(new Uint8Array(MAX_PAYLOAD_LEN + 1)), RangeError);
    assert.equal(data(b.open(a.seal(bytes("ok")))), "ok");
  });
});

Deno.test("a frame claiming a far-future key epoch ends the session without deriving keys", () => {
  const [a, b] = sessions({ replayWindow: 32, rekeyInterval: 32 });
  const frame = a.seal(bytes("x"));
  new DataView(frame.buffer).setBigUint64(1, 32n * 1_000_000n);
  assert.throws(() => b.open(frame), SessionClosedError);
});

Deno.test("nonce exhaustion ends the session", () => {
  const start = 0xffff_ffff_ffff_fffbn; // 2^64 - 5
  const [a, b] = sessions({ startNonceForTesting: start });
  assert.equal(data(b.open(a.seal(bytes("1")))), "1");
  assert.equal(data(b.open(a.seal(bytes("2")))), "2");
  assert.equal(data(b.open(a.seal(bytes("3")))), "3");
  assert.equal(a.sendNonce, 0xffff_ffff_ffff_fffen);
  assert.equal(data(b.open(a.seal(bytes("4")))), "4"); // 2^64-2: the last usable nonce
  assert.throws(() => a.seal(bytes("5")), SessionClosedError);
  assert.equal(a.endError?.reason, "nonce-exhausted");
  assert.throws(() => a.seal(bytes("6")), SessionClosedError);
});

Deno.test("the reserved nonce 2^64-1 on the wire ends the session", () => {
  const [a, b] = sessions();
  const frame = a.seal(bytes("x"));
  new DataView(frame.buffer).setBigUint64(1, 0xffff_ffff_ffff_ffffn);
  assert.throws(() => b.open(frame), SessionClosedError);
});

Deno.test("an authenticated close ends both sides cleanly", () => {
  const [a, b] = sessions();
  const close = a.sealClose();
  assert.equal(a.ended, true);
  assert.deepEqual(b.open(close), { kind: "close" });
  assert.equal(b.endError?.reason, "peer-closed");
  assert.throws(() => a.seal(bytes("late")), SessionClosedError);
});

Deno.test("a batch frame carries several messages, in order, for one nonce", () => {
  const [a, b] = sessions();
  const messages = [bytes("one"), EMPTY, bytes("three"), new Uint8Array(1000).fill(7)];
  const frame = a.sealBatch(messages);
  assert.equal(a.sendNonce, 1n);
  const result = b.open(frame);
  assert.equal(result.kind, "batch");
  assert.deepEqual((result as { payloads: readonly Uint8Array[] }).payloads, messages);
  assert.equal(data(b.open(a.seal(bytes("after")))), "after");
  assert.throws(() => a.sealBatch([]), RangeError);
  assert.throws(() => a.sealBatch([new Uint8Array(MAX_PAYLOAD_LEN - 1)]), RangeError);
  assert.equal(a.ended, false);
});

Deno.test("an authenticated batch frame that does not parse exactly ends the session", async (t) => {
  const malformed: [string, Uint8Array][] = [
    ["empty", EMPTY],
    ["a length cut in half", Uint8Array.of(0, 1, 9, 0)],
    ["a message running past the end", Uint8Array.of(0, 5, 1, 2)],
  ];
  for (const [name, plaintext] of malformed) {
    await t.step(name, () => {
      // Seal by hand with the sender's raw CipherState: sealBatch never writes such a payload.
      const protocol = "Noise_NN_25519_ChaChaPoly_SHA256";
      const i = new HandshakeState(protocol, true, { backend: nativeBackend });
      const r = new HandshakeState(protocol, false, { backend: nativeBackend });
      r.readMessage(i.writeMessage(EMPTY));
      i.readMessage(r.writeMessage(EMPTY));
      const send = i.split().send;
      const receiver = new TransportSession(r.split());
      const header = new Uint8Array(FRAME_HEADER_LEN);
      header[0] = FRAME_BATCH;
      const ciphertext = send.encryptWithAd(header, plaintext);
      const frame = new Uint8Array(FRAME_HEADER_LEN + ciphertext.length);
      frame.set(header);
      frame.set(ciphertext, FRAME_HEADER_LEN);
      assert.throws(() => receiver.open(frame), SessionClosedError);
      assert.equal(receiver.ended, true);
      assert.equal(receiver.endError?.reason, "malformed-frame");
    });
  }
});

Deno.test("frames sealed into one reused buffer open like fresh ones", () => {
  const [a, b] = sessions();
  const into = new Uint8Array(MAX_FRAME_LEN + 8).subarray(8); // not at the buffer's start
  const big = crypto.getRandomValues(new Uint8Array(60_000));
  const first = a.seal(big, into);
  assert.equal(first.buffer, into.buffer);
  assert.equal(first.byteOffset, into.byteOffset);
  assert.deepEqual((b.open(first.slice()) as { payload: Uint8Array }).payload, big);
  // The next frame overwrites the buffer; a batch too.
  const batch = a.sealBatch([bytes("one"), bytes("two")], into);
  assert.equal(batch.buffer, into.buffer);
  const opened = b.open(batch.slice());
  assert.equal(opened.kind, "batch");
  assert.deepEqual((opened as { payloads: readonly Uint8Array[] }).payloads.map((p) => p.slice()), [
    bytes("one"),
    bytes("two"),
  ]);
  // A buffer too small is not used.
  const small = new Uint8Array(10);
  assert.notEqual(a.seal(bytes("too long for ten bytes"), small).buffer, small.buffer);
});
