import assert from "node:assert/strict";
import { nativeBackend, portableBackend } from "../src/channel/backends.ts";
import { HandshakeError, HandshakeState } from "../src/channel/handshake_state.ts";
import { Identity } from "../src/channel/identity.ts";
import {
  BINDING_CONTEXT,
  CHANNEL_PROLOGUE,
  CHANNEL_PROTOCOL,
  EAGER_FLUSH_BYTES,
  MAX_BATCHED_MESSAGE_LEN,
  SecureChannel,
  type SecureChannelOptions,
  TrustError,
} from "../src/channel/secure_channel.ts";
import { SessionClosedError } from "../src/channel/transport_session.ts";
import { TrustPolicy } from "../src/channel/trust_policy.ts";
import { ConnTransport, memoryTransportPair, type MessageTransport } from "../src/wire/mod.ts";
import { MAX_FRAME_LEN, MAX_PAYLOAD_LEN } from "../src/channel/transport_session.ts";

const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

interface Node {
  identity: Identity;
  trust: TrustPolicy;
}

async function node(options: Parameters<typeof TrustPolicy.open>[0] = {}): Promise<Node> {
  return { identity: Identity.generate(), trust: await TrustPolicy.open(options) };
}

/** A sat and a proxy that allowlist each other's identifiers. */
async function allowlistedPair(): Promise<{ sat: Node; proxy: Node }> {
  const satIdentity = Identity.generate();
  const proxyIdentity = Identity.generate();
  return {
    sat: {
      identity: satIdentity,
      trust: await TrustPolicy.open({ allow: [proxyIdentity.identifier] }),
    },
    proxy: {
      identity: proxyIdentity,
      trust: await TrustPolicy.open({ allow: [satIdentity.identifier] }),
    },
  };
}

/** Connects an initiator and a responder; returns both outcomes (value or error). */
async function connect(
  sat: Node,
  proxy: Node,
  satExtra: Partial<SecureChannelOptions> = {},
  proxyExtra: Partial<SecureChannelOptions> = {},
  [a, b]: [MessageTransport, MessageTransport] = memoryTransportPair(),
) {
  const [initiated, responded] = await Promise.allSettled([
    SecureChannel.initiate(a, { ...sat, ...satExtra }),
    SecureChannel.respond(b, { ...proxy, ...proxyExtra }),
  ]);
  return { initiated, responded };
}

function value<T>(r: PromiseSettledResult<T>): T {
  if (r.status === "rejected") throw r.reason;
  return r.value;
}

function reason<T>(r: PromiseSettledResult<T>): unknown {
  assert.equal(r.status, "rejected", "expected the handshake to fail");
  return (r as PromiseRejectedResult).reason;
}

Deno.test("a sat enrolls with a ticket, both pin each other, and data flows both ways", async () => {
  const proxy = await node();
  const sat = await node();
  const ticket = await proxy.trust.issueTicket(proxy.identity.identifier);
  const { initiated, responded } = await connect(sat, proxy, { ticket });
  const [s, p] = [value(initiated), value(responded)];
  assert.equal(s.peer, proxy.identity.identifier);
  assert.equal(p.peer, sat.identity.identifier);
  assert.deepEqual(s.handshakeHash, p.handshakeHash);
  assert.ok(sat.trust.isTrusted(proxy.identity.identifier));
  assert.ok(proxy.trust.isTrusted(sat.identity.identifier));
  assert.ok(s.enrolled && p.enrolled);
  await s.send(bytes("hello"));
  assert.equal(text(await p.receive()), "hello");
  await p.send(bytes("hello, my friend"));
  assert.equal(text(await s.receive()), "hello, my friend");
  await s.close();
  assert.equal(await p.receive(), undefined);
  assert.equal(p.closed, true);

  // After enrollment both are pinned: a second channel needs no ticket.
  const again = await connect(sat, proxy);
  assert.equal(value(again.responded).enrolled, false);
  await value(again.initiated).close();
  await value(again.responded).close();
});

Deno.test("a used ticket is refused on its second use", async () => {
  const proxy = await node();
  const ticket = await proxy.trust.issueTicket(proxy.identity.identifier);
  const first = await connect(await node(), proxy, { ticket });
  await value(first.initiated).close();
  const second = await connect(await node(), proxy, { ticket });
  assert.ok(reason(second.initiated) instanceof TrustError);
  const refused = reason(second.responded);
  assert.ok(refused instanceof TrustError);
  assert.match(refused.message, /used/);
});

Deno.test("an expired ticket is refused", async () => {
  let now = Date.now();
  const proxy = await node({ now: () => now });
  const ticket = await proxy.trust.issueTicket(proxy.identity.identifier, { ttlMs: 60_000 });
  now += 61_000;
  const { initiated, responded } = await connect(await node(), proxy, { ticket });
  assert.match(String(reason(initiated)), /ticket may be used or expired/);
  assert.match(String(reason(responded)), /expired/);
});

Deno.test("an unknown initiator is refused and learns only that it was refused", async () => {
  const proxy = await node();
  const sat = await node({ allow: [proxy.identity.identifier] });
  const { initiated, responded } = await connect(sat, proxy);
  const satError = reason(initiated);
  assert.ok(satError instanceof TrustError);
  assert.match(satError.message, /refused this node/);
  const proxyError = reason(responded);
  assert.ok(proxyError instanceof TrustError);
  assert.equal(proxyError.peer, sat.identity.identifier);
  assert.match(proxyError.message, /not allowlisted, not pinned, and no ticket/);
});

Deno.test("an unknown responder is refused by the initiator before message 3", async () => {
  const proxy = await node();
  const sat = await node();
  const { initiated, responded } = await connect(sat, proxy);
  const error = reason(initiated);
  assert.ok(error instanceof TrustError);
  assert.equal(error.peer, proxy.identity.identifier);
  assert.ok(reason(responded) instanceof HandshakeError);
});

Deno.test("allowlisted identifiers on both sides connect without tickets", async () => {
  const { sat, proxy } = await allowlistedPair();
  const { initiated, responded } = await connect(sat, proxy);
  await value(initiated).close();
  await value(responded).close();
});

Deno.test("nobody is trusted by default; trusting everyone is an explicit opt-in", async () => {
  const anyone = await node({ trustEveryoneInsecure: true });
  const stranger = await node({ trustEveryoneInsecure: true });
  const { initiated, responded } = await connect(stranger, anyone);
  await value(initiated).close();
  await value(responded).close();
  const closed = await connect(await node(), await node());
  assert.ok(reason(closed.initiated) instanceof TrustError);
});

Deno.test("a relay that puts another responder in the middle of an enrollment gets no ticket", async () => {
  const proxy = await node();
  const mallory = await node({ trustEveryoneInsecure: true });
  const sat = await node();
  const ticket = await proxy.trust.issueTicket(proxy.identity.identifier);
  // The relay connects the sat to mallory instead of the proxy; record what mallory receives.
  const [a, b] = memoryTransportPair();
  const seen: Uint8Array[] = [];
  const spy: MessageTransport = {
    send: (m) => b.send(m),
    receive: async () => {
      const m = await b.receive();
      if (m) seen.push(m);
      return m;
    },
    close: () => b.close(),
  };
  const [initiated, responded] = await Promise.allSettled([
    SecureChannel.initiate(a, { ...sat, ticket }),
    SecureChannel.respond(spy, mallory),
  ]);
  const error = reason(initiated);
  assert.ok(error instanceof TrustError);
  assert.match(error.message, /refusing before revealing the ticket/);
  assert.equal(error.peer, mallory.identity.identifier);
  assert.ok(reason(responded) instanceof HandshakeError);
  assert.equal(seen.length, 1, "mallory must see message 1 only, never message 3");
  assert.equal(sat.trust.isTrusted(mallory.identity.identifier), false);
  // The ticket is still good with the real proxy.
  const real = await connect(sat, proxy, { ticket });
  await value(real.initiated).close();
  await value(real.responded).close();
});

Deno.test("a valid identity with a signature over a different static key is refused", async () => {
  const sat = await node({ trustEveryoneInsecure: true });
  const victim = Identity.generate();
  const backend = nativeBackend;
  for (const forge of ["other-static", "missing", "garbage-signature"] as const) {
    const [a, b] = memoryTransportPair();
    const satSide = SecureChannel.initiate(a, sat);
    // A hand-made responder: its Noise static key is not the one the identity signed.
    const hs = new HandshakeState(CHANNEL_PROTOCOL, false, {
      backend,
      prologue: CHANNEL_PROLOGUE,
      s: backend.dh.generateKeyPair(),
    });
    hs.readMessage((await b.receive())!);
    const signedKey = backend.dh.generateKeyPair().publicKey;
    const signature = victim.sign(new Uint8Array([...BINDING_CONTEXT, ...signedKey]));
    if (forge === "garbage-signature") signature[10]! ^= 1;
    const payload = forge === "missing"
      ? new Uint8Array(0)
      : new Uint8Array([1, 0, ...victim.publicKey, ...signature]);
    await b.send(hs.writeMessage(payload));
    const error = await satSide.then(() => undefined, (e) => e);
    assert.ok(error instanceof HandshakeError, forge);
    assert.match(error.message, forge === "missing" ? /missing or malformed/ : /signature/);
    b.close();
  }
});

Deno.test("the channel works between the native and the portable backend", async () => {
  const proxy = await node();
  const sat = await node();
  const ticket = await proxy.trust.issueTicket(proxy.identity.identifier);
  const { initiated, responded } = await connect(
    sat,
    proxy,
    { ticket, backend: portableBackend },
    { backend: nativeBackend },
  );
  const [s, p] = [value(initiated), value(responded)];
  await s.send(bytes("cross"));
  assert.equal(text(await p.receive()), "cross");
  await p.close();
  assert.equal(await s.receive(), undefined);
});

Deno.test("duplicated frames in flight are delivered once and counted as dropped", async () => {
  const { sat, proxy: trustingProxy } = await allowlistedPair();
  const [a, b] = memoryTransportPair();
  let duplicate = false;
  const doubling: MessageTransport = {
    send: async (m) => {
      await a.send(m);
      if (duplicate) await a.send(m);
    },
    receive: () => a.receive(),
    close: () => a.close(),
  };
  const { initiated, responded } = await connect(sat, trustingProxy, {}, {}, [doubling, b]);
  const [s, p] = [value(initiated), value(responded)];
  duplicate = true;
  for (const word of ["one", "two", "three"]) await s.send(bytes(word));
  await s.close();
  const received: string[] = [];
  for (let m = await p.receive(); m; m = await p.receive()) received.push(text(m));
  assert.deepEqual(received, ["one", "two", "three"]);
  assert.equal(p.droppedFrames, 3);
});

Deno.test("a tampered frame ends the channel with an error and closes the transport", async () => {
  const { sat, proxy: trustingProxy } = await allowlistedPair();
  const [a, b] = memoryTransportPair();
  let tamper = false;
  const flipping: MessageTransport = {
    send: (m) => {
      if (tamper) m[m.length - 3]! ^= 4;
      return a.send(m);
    },
    receive: () => a.receive(),
    close: () => a.close(),
  };
  const { initiated, responded } = await connect(sat, trustingProxy, {}, {}, [flipping, b]);
  const [s, p] = [value(initiated), value(responded)];
  tamper = true;
  await s.send(bytes("hello"));
  await assert.rejects(() => p.receive(), SessionClosedError);
  assert.equal(p.closed, true);
  await assert.rejects(() => p.send(bytes("x")), SessionClosedError);
  await assert.rejects(() => s.receive(), SessionClosedError); // transport closed, no clean close
});

Deno.test("a handshake that gets no answer times out and closes the transport", async () => {
  const sat = await node({ trustEveryoneInsecure: true });
  const [a, b] = memoryTransportPair();
  const error = await SecureChannel.initiate(a, { ...sat, handshakeTimeoutMs: 50 }).catch((e) => e);
  assert.ok(error instanceof HandshakeError);
  assert.match(error.message, /timed out/);
  assert.equal(await b.receive() !== undefined, true); // message 1 was sent
  assert.equal(await b.receive(), undefined); // then the transport closed
});

Deno.test("a secure channel runs over real TCP on loopback", async () => {
  const proxy = await node();
  const sat = await node();
  const ticket = await proxy.trust.issueTicket(proxy.identity.identifier);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const options = { maxMessageLen: MAX_FRAME_LEN };
  const pair: [MessageTransport, MessageTransport] = [
    new ConnTransport(conn, options),
    new ConnTransport(await accepted, options),
  ];
  listener.close();
  const { initiated, responded } = await connect(sat, proxy, { ticket }, {}, pair);
  const [s, p] = [value(initiated), value(responded)];
  const big = crypto.getRandomValues(new Uint8Array(60_000));
  await Promise.all([s.send(big), s.send(bytes("small"))]);
  assert.deepEqual(await p.receive(), big);
  assert.equal(text(await p.receive()), "small");
  await p.send(bytes("bye"));
  assert.equal(text(await s.receive()), "bye");
  await s.close();
  assert.equal(await p.receive(), undefined);
  await p.close();
});

/**
 * A connected sat (`s`) and proxy (`p`) whose transport counts the frames the sat hands it
 * after the handshake.
 */
async function countingFrames(): Promise<
  { s: SecureChannel; p: SecureChannel; frames: () => number }
> {
  const { sat, proxy: trustingProxy } = await allowlistedPair();
  const [a, b] = memoryTransportPair();
  let count = 0;
  const counting: MessageTransport = {
    send: (m) => {
      count++;
      return a.send(m);
    },
    receive: () => a.receive(),
    close: () => a.close(),
  };
  const { initiated, responded } = await connect(sat, trustingProxy, {}, {}, [counting, b]);
  count = 0;
  return { s: value(initiated), p: value(responded), frames: () => count };
}

Deno.test("messages sent in one turn share frames and arrive in order, each on its own", async () => {
  const { s, p, frames } = await countingFrames();
  const large = crypto.getRandomValues(new Uint8Array(MAX_BATCHED_MESSAGE_LEN + 1));
  const sent = [bytes("one"), bytes(""), large, bytes("three")];
  for (let i = 0; i < 100; i++) sent.push(bytes(`small ${i}`));
  await Promise.all(sent.map((m) => s.send(m)));
  // [one, ""] batched, the large one alone, then the rest batched: three frames.
  assert.equal(frames(), 3);
  await s.send(bytes("last"));
  await s.close(); // sent before the close frame
  const received: Uint8Array[] = [];
  for (let m = await p.receive(); m; m = await p.receive()) received.push(m);
  assert.deepEqual(received, [...sent, bytes("last")]);
  await assert.rejects(() => s.send(bytes("late")), SessionClosedError);
  await assert.rejects(() => p.send(new Uint8Array(MAX_PAYLOAD_LEN + 1)), RangeError);
});

Deno.test("a turn that sends a lot hands frames to the transport before it ends, in order", async () => {
  const { s, p, frames } = await countingFrames();
  // Small messages wait for the end of the turn, to share a batch frame.
  const small = Array.from({ length: 10 }, (_, i) => bytes(`small ${i}`));
  const sends = small.map((m) => s.send(m));
  assert.equal(frames(), 0);
  // Once EAGER_FLUSH_BYTES wait, everything queued goes at once, within the same turn: the
  // small ones in one batch frame, then each large one in a frame of its own.
  let queued = small.reduce((sum, m) => sum + m.length, 0);
  const large: Uint8Array[] = [];
  while (queued < EAGER_FLUSH_BYTES) {
    assert.equal(frames(), 0);
    const message = crypto.getRandomValues(new Uint8Array(MAX_PAYLOAD_LEN));
    large.push(message);
    sends.push(s.send(message));
    queued += message.length;
  }
  assert.equal(frames(), 1 + large.length);
  // What is sent after that waits for the end of the turn again.
  sends.push(s.send(bytes("after")));
  assert.equal(frames(), 1 + large.length);
  await Promise.all(sends);
  assert.equal(frames(), 2 + large.length);
  await s.close();
  const received: Uint8Array[] = [];
  for (let m = await p.receive(); m; m = await p.receive()) received.push(m);
  assert.deepEqual(received, [...small, ...large, bytes("after")]);
});
