/**
 * Attacks on the path between sat and proxy, with real relays and real channels: a relay (or
 * anything on its TCP path) that tampers with, replays, reorders or truncates channel frames,
 * that forwards a sat to the wrong node, that runs its own handshakes in the middle, or that
 * swaps handshake keys; and a recorded enrollment replayed to reuse its ticket. All refused,
 * with nothing delivered to the application.
 *
 * Covered elsewhere, not repeated here:
 * - an unenrolled sat refused: secure_channel_test.ts "an unknown initiator is refused and
 *   learns only that it was refused", e2e_test.ts "sats without a trust decision are refused,
 *   exit 2, and never get a request";
 * - a stolen ticket used a second time: secure_channel_test.ts "a used ticket is refused on its
 *   second use" (another identity presents it), trust_policy_test.ts "TrustPolicy lets exactly
 *   one of two concurrent redeems of a ticket succeed" and "...keeps pins and used tickets
 *   across a restart";
 * - a second identity claiming a registered forwarding address: relay_test.ts "another
 *   identity cannot take over a registered address" (online and offline owner);
 * - a responder put in the middle of an enrollment gets no ticket: secure_channel_test.ts and
 *   e2e_test.ts "a sat refuses a proxy other than the one its ticket names";
 * - an identity signature over another Noise static key: secure_channel_test.ts.
 */
import assert from "node:assert/strict";
import {
  HandshakeError,
  Identity,
  SecureChannel,
  type SecureChannelOptions,
  SessionClosedError,
  TrustError,
  TrustPolicy,
} from "../src/channel/mod.ts";
import { connectRelay, type LinkNetwork } from "../src/link/mod.ts";
import { RelayServer } from "../src/relay/mod.ts";
import {
  decodeRelayMessage,
  encodeFrame,
  encodeRelayMessage,
  FrameDecoder,
  MAX_RELAY_MESSAGE_LEN,
  memoryTransportPair,
  type MessageTransport,
  readU32,
  RelayMessageType,
} from "../src/wire/mod.ts";

const HOST = "127.0.0.1";
const text = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);
/** Handshake messages 1 and 3 are the initiator's first two DATA payloads on its link. */
const HANDSHAKE_FRAMES = 2;

interface Peer {
  identity: Identity;
  trust: TrustPolicy;
}

/** A sat and a proxy that already trust each other (allowlisted both ways). */
async function trustingPair(): Promise<{ sat: Peer; proxy: Peer }> {
  const sat = Identity.generate();
  const proxy = Identity.generate();
  return {
    sat: { identity: sat, trust: await TrustPolicy.open({ allow: [proxy.identifier] }) },
    proxy: { identity: proxy, trust: await TrustPolicy.open({ allow: [sat.identifier] }) },
  };
}

/** What a hostile middlebox does to one DATA payload a node sends: the payloads to forward. */
type DataHook = (payload: Uint8Array, index: number) => Uint8Array[];

/**
 * A TCP pass-through between nodes and a relay that reads the relay protocol on the way from
 * the node: it may rewrite the address of OPEN (forward to the wrong node) and rewrite, drop,
 * duplicate or reorder each DATA payload (`index` counts DATA frames per link). What the relay
 * sends back passes unchanged.
 */
class HostileRelayPath {
  readonly #listener: Deno.TcpListener;
  readonly #tasks = new Set<Promise<void>>();
  readonly #conns = new Set<Deno.Conn>();
  readonly #accepting: Promise<void>;
  onData: DataHook = (payload) => [payload];
  openAddress: (address: string) => string = (address) => address;

  constructor(readonly relayPort: number) {
    this.#listener = Deno.listen({ hostname: HOST, port: 0 });
    this.#accepting = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await this.#accepting;
    await Promise.allSettled([...this.#tasks]);
  }

  async #accept(): Promise<void> {
    for await (const node of this.#listener) {
      const relay = await Deno.connect({ hostname: HOST, port: this.relayPort });
      this.#conns.add(node).add(relay);
      for (const task of [this.#fromNode(node, relay), pipe(relay, node)]) {
        this.#tasks.add(task);
        task.finally(() => {
          this.#tasks.delete(task);
          for (const conn of [node, relay]) {
            try {
              conn.close();
            } catch { /* closed */ }
            this.#conns.delete(conn);
          }
        });
      }
    }
  }

  async #fromNode(node: Deno.Conn, relay: Deno.Conn): Promise<void> {
    const decoder = new FrameDecoder(MAX_RELAY_MESSAGE_LEN);
    const counts = new Map<number, number>();
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (let n = await node.read(buffer); n !== null; n = await node.read(buffer)) {
        decoder.push(buffer.subarray(0, n));
        for (let body = decoder.next(); body; body = decoder.next()) {
          for (const out of this.#rewrite(body, counts)) await writeAll(relay, encodeFrame(out));
        }
      }
    } catch {
      // a side closed
    }
  }

  #rewrite(body: Uint8Array, counts: Map<number, number>): Uint8Array[] {
    if (body[0] === RelayMessageType.DATA) {
      const linkId = readU32(body, 1);
      const index = counts.get(linkId) ?? 0;
      counts.set(linkId, index + 1);
      return this.onData(body.subarray(5), index).map((payload) =>
        encodeRelayMessage({ type: "data", linkId, data: payload })
      );
    }
    const message = decodeRelayMessage(body);
    if (message.type === "open") {
      return [encodeRelayMessage({ ...message, address: this.openAddress(message.address) })];
    }
    return [body];
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await conn.write(data.subarray(offset));
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (let n = await from.read(buffer); n !== null; n = await from.read(buffer)) {
      await writeAll(to, buffer.subarray(0, n));
    }
  } catch {
    // a side closed
  }
}

/** A relay, a proxy listening on it directly, and a sat whose path to it is hostile. */
async function hostileNetwork() {
  const stateDir = await Deno.makeTempDir({ prefix: "security_test_" });
  const relay = await RelayServer.start({ hostname: HOST, port: 0, stateDir });
  const path = new HostileRelayPath(relay.addr.port);
  const proxyNet = await connectRelay({ hostname: HOST, port: relay.addr.port });
  const satNet = await connectRelay({ hostname: HOST, port: path.port });
  const networks: LinkNetwork[] = [proxyNet, satNet];
  return {
    relay,
    path,
    proxyNet,
    satNet,
    /** Another node on the relay (directly), e.g. an attacker's. */
    async node(): Promise<LinkNetwork> {
      const network = await connectRelay({ hostname: HOST, port: relay.addr.port });
      networks.push(network);
      return network;
    },
    async close() {
      for (const network of networks) network.close();
      await Promise.all(networks.map((n) => n.closed));
      await path.close();
      await relay.close();
      await Deno.remove(stateDir, { recursive: true });
    },
  };
}

type HostileNetwork = Awaited<ReturnType<typeof hostileNetwork>>;

/** Runs a handshake from the sat (through the hostile path) to the proxy's listener. */
async function channelThrough(net: HostileNetwork, pair: { sat: Peer; proxy: Peer }) {
  const listener = await net.proxyNet.listen(pair.proxy.identity);
  const [satLink, proxyLink] = await Promise.all([
    net.satNet.connect(listener.address),
    listener.accept(),
  ]);
  assert.ok(proxyLink);
  const [sat, proxy] = await Promise.all([
    SecureChannel.initiate(satLink, pair.sat),
    SecureChannel.respond(proxyLink, pair.proxy),
  ]);
  return { sat, proxy, listener };
}

/** Sends each message as its own frame (awaiting each), then an authenticated close. */
async function sendEach(channel: SecureChannel, messages: readonly string[]): Promise<void> {
  for (const message of messages) await channel.send(bytes(message));
  await channel.close();
}

/** Everything the channel delivers until it ends; the error it ended with, if any. */
async function drain(channel: SecureChannel): Promise<{ got: string[]; error?: unknown }> {
  const got: string[] = [];
  try {
    for (let m = await channel.receive(); m !== undefined; m = await channel.receive()) {
      got.push(text(m)!);
    }
    return { got };
  } catch (error) {
    return { got, error };
  }
}

/** A bystander link on the same relay still carries messages. */
async function assertRelayServesOthers(net: HostileNetwork): Promise<void> {
  const owner = await net.node();
  const visitor = await net.node();
  const listener = await owner.listen(Identity.generate());
  const [a, b] = await Promise.all([visitor.connect(listener.address), listener.accept()]);
  await a.send(bytes("bystander"));
  assert.equal(text(await b!.receive()), "bystander");
  a.close();
}

Deno.test("a relay path that flips a bit in a channel frame ends the session; nothing after it is delivered", async () => {
  const net = await hostileNetwork();
  try {
    const { sat, proxy } = await channelThrough(net, await trustingPair());
    net.path.onData = (payload, index) => {
      if (index === HANDSHAKE_FRAMES + 1) payload[payload.length - 1]! ^= 0x01; // the tag
      return [payload];
    };
    await sendEach(sat, ["first", "tampered", "after"]);
    const { got, error } = await drain(proxy);
    assert.deepEqual(got, ["first"]);
    assert.ok(error instanceof SessionClosedError, `ended with ${error}`);
    assert.equal(error.reason, "authentication-failed");
    assert.equal(proxy.closed, true);
    await assert.rejects(() => proxy.send(bytes("x")), SessionClosedError);
    await assertRelayServesOthers(net);
  } finally {
    await net.close();
  }
});

Deno.test("a relay path that tampers with the cleartext frame header ends the session", async (t) => {
  for (const [name, offset] of [["type", 0], ["nonce", 8]] as const) {
    await t.step(name, async () => {
      const net = await hostileNetwork();
      try {
        const { sat, proxy } = await channelThrough(net, await trustingPair());
        net.path.onData = (payload, index) => {
          if (index === HANDSHAKE_FRAMES) payload[offset]! ^= offset === 0 ? 0x05 : 0x01;
          return [payload];
        };
        await sendEach(sat, ["tampered", "after"]);
        const { got, error } = await drain(proxy);
        assert.deepEqual(got, []);
        assert.ok(error instanceof SessionClosedError, `ended with ${error}`);
      } finally {
        await net.close();
      }
    });
  }
});

Deno.test("replayed channel frames through a relay are dropped, counted, and never delivered twice", async () => {
  const net = await hostileNetwork();
  try {
    const { sat, proxy } = await channelThrough(net, await trustingPair());
    const seen: Uint8Array[] = [];
    net.path.onData = (payload, index) => {
      if (index < HANDSHAKE_FRAMES) return [payload];
      seen.push(payload.slice());
      // Each frame twice, and every earlier frame again after it.
      return [payload, payload, ...seen.slice(0, -1)];
    };
    await sendEach(sat, ["one", "two", "three"]);
    const { got, error } = await drain(proxy);
    assert.equal(error, undefined);
    assert.deepEqual(got, ["one", "two", "three"]);
    // 4 frames (3 messages and the close): 1 + 1 + 2 + 3 replays before the close ends it.
    assert.equal(proxy.droppedFrames, 1 + 2 + 3);
  } finally {
    await net.close();
  }
});

Deno.test("channel frames reordered by a relay are each delivered exactly once", async () => {
  const net = await hostileNetwork();
  try {
    const { sat, proxy } = await channelThrough(net, await trustingPair());
    let held: Uint8Array | undefined;
    net.path.onData = (payload, index) => {
      if (index < HANDSHAKE_FRAMES) return [payload];
      // Swap frames pairwise: 1 0 3 2 ... (the close is the last frame and goes last).
      if ((index - HANDSHAKE_FRAMES) % 2 === 0 && index - HANDSHAKE_FRAMES < 4) {
        held = payload.slice();
        return [];
      }
      const out = held ? [payload, held] : [payload];
      held = undefined;
      return out;
    };
    await sendEach(sat, ["m0", "m1", "m2", "m3"]);
    const { got, error } = await drain(proxy);
    assert.equal(error, undefined);
    assert.deepEqual(got, ["m1", "m0", "m3", "m2"]);
    assert.equal(proxy.droppedFrames, 0);
  } finally {
    await net.close();
  }
});

Deno.test("a channel frame truncated by a relay ends the session with nothing of it delivered", async (t) => {
  for (const keep of [0, 1, 9, 24, -1]) {
    await t.step(`cut to ${keep < 0 ? "all but the last byte" : `${keep} bytes`}`, async () => {
      const net = await hostileNetwork();
      try {
        const { sat, proxy } = await channelThrough(net, await trustingPair());
        net.path.onData = (payload, index) =>
          index === HANDSHAKE_FRAMES ? [payload.slice(0, keep < 0 ? -1 : keep)] : [payload];
        await sendEach(sat, ["a message long enough to be cut anywhere", "after"]);
        const { got, error } = await drain(proxy);
        assert.deepEqual(got, []);
        assert.ok(error instanceof SessionClosedError, `ended with ${error}`);
      } finally {
        await net.close();
      }
    });
  }
});

Deno.test("a relay that drops the authenticated close cannot fake a clean end", async () => {
  const net = await hostileNetwork();
  try {
    const { sat, proxy, listener } = await channelThrough(net, await trustingPair());
    net.path.onData = (payload, index) => index === HANDSHAKE_FRAMES + 1 ? [] : [payload];
    await sat.send(bytes("only"));
    await sat.close(); // its close frame is dropped; the link then closes
    const { got, error } = await drain(proxy);
    assert.deepEqual(got, ["only"]);
    assert.ok(error instanceof SessionClosedError, "a cut stream must not look like a close");
    assert.match(error.message, /without an authenticated close/);
    listener.close();
  } finally {
    await net.close();
  }
});

Deno.test("a frame recorded from one session is refused in another between the same peers", async () => {
  const net = await hostileNetwork();
  try {
    const pair = await trustingPair();
    const recorded: Uint8Array[] = [];
    net.path.onData = (payload, index) => {
      if (index >= HANDSHAKE_FRAMES) recorded.push(payload.slice());
      return [payload];
    };
    const first = await channelThrough(net, pair);
    await sendEach(first.sat, ["secret"]);
    assert.deepEqual((await drain(first.proxy)).got, ["secret"]);
    first.listener.close();

    // A later session: the attacker injects the recorded frame in place of the first one.
    net.path.onData = (payload, index) => index === HANDSHAKE_FRAMES ? [recorded[0]!] : [payload];
    const second = await channelThrough(net, pair);
    await sendEach(second.sat, ["fresh"]);
    const { got, error } = await drain(second.proxy);
    assert.deepEqual(got, []);
    assert.ok(error instanceof SessionClosedError, `ended with ${error}`);
  } finally {
    await net.close();
  }
});

Deno.test("a relay that forwards a sat to the wrong node: the sat refuses it, nothing flows", async () => {
  const net = await hostileNetwork();
  try {
    const pair = await trustingPair();
    const proxyListener = await net.proxyNet.listen(pair.proxy.identity);
    // Mallory is a node of its own on the relay, trusting anyone, and records what it gets.
    const mallory = await net.node();
    const malloryIdentity = Identity.generate();
    const malloryListener = await mallory.listen(malloryIdentity);
    net.path.openAddress = () => malloryListener.address;
    const [satLink, malloryLink] = await Promise.all([
      net.satNet.connect(proxyListener.address),
      malloryListener.accept(),
    ]);
    assert.ok(malloryLink);
    const seen: Uint8Array[] = [];
    const recording: MessageTransport = {
      send: (m) => malloryLink.send(m),
      receive: async () => {
        const m = await malloryLink.receive();
        if (m) seen.push(m);
        return m;
      },
      close: () => malloryLink.close(),
    };
    const [initiated, responded] = await Promise.allSettled([
      SecureChannel.initiate(satLink, pair.sat),
      SecureChannel.respond(recording, {
        identity: malloryIdentity,
        trust: await TrustPolicy.open({ trustEveryoneInsecure: true }),
      }),
    ]);
    assert.equal(initiated.status, "rejected");
    const error = (initiated as PromiseRejectedResult).reason;
    assert.ok(error instanceof TrustError, `the sat failed with ${error}`);
    assert.equal(error.peer, malloryIdentity.identifier);
    assert.match(error.message, /is not trusted/);
    assert.equal(responded.status, "rejected");
    assert.ok((responded as PromiseRejectedResult).reason instanceof HandshakeError);
    assert.equal(seen.length, 1, "mallory got message 1 only: no identity proof, no data");

    // The real proxy never saw that link: its first accepted link is the next honest one.
    net.path.openAddress = (address) => address;
    const [honestLink, proxyLink] = await Promise.all([
      net.satNet.connect(proxyListener.address),
      proxyListener.accept(),
    ]);
    const [sat, proxy] = await Promise.all([
      SecureChannel.initiate(honestLink, pair.sat),
      SecureChannel.respond(proxyLink!, pair.proxy),
    ]);
    await sendEach(sat, ["honest"]);
    assert.deepEqual((await drain(proxy)).got, ["honest"]);
  } finally {
    await net.close();
  }
});

/**
 * A man in the middle that terminates both handshakes with its own identity (it has the
 * relay's position, so it sees every message), forwarding application data if it can.
 */
async function manInTheMiddle(
  sat: SecureChannelOptions,
  proxy: SecureChannelOptions,
  mallory: SecureChannelOptions,
) {
  const [satEnd, malloryToSat] = memoryTransportPair();
  const [malloryToProxy, proxyEnd] = memoryTransportPair();
  return await Promise.allSettled([
    SecureChannel.initiate(satEnd, sat),
    SecureChannel.respond(malloryToSat, mallory),
    SecureChannel.initiate(malloryToProxy, mallory),
    SecureChannel.respond(proxyEnd, proxy),
  ]);
}

Deno.test("a man in the middle running its own handshakes is refused by both ends", async (t) => {
  const mallory = {
    identity: Identity.generate(),
    trust: await TrustPolicy.open({ trustEveryoneInsecure: true }),
  };
  await t.step("peers that allowlist each other", async () => {
    const { sat, proxy } = await trustingPair();
    const [s, , , p] = await manInTheMiddle(sat, proxy, mallory);
    assert.ok(s.status === "rejected" && s.reason instanceof TrustError, "sat");
    assert.equal((s as PromiseRejectedResult).reason.peer, mallory.identity.identifier);
    assert.ok(p.status === "rejected" && p.reason instanceof TrustError, "proxy");
    assert.match(String((p as PromiseRejectedResult).reason), /refused .*not allowlisted/);
  });
  await t.step("peers that pinned each other by an earlier enrollment", async () => {
    const sat = { identity: Identity.generate(), trust: await TrustPolicy.open() };
    const proxy = { identity: Identity.generate(), trust: await TrustPolicy.open() };
    const ticket = await proxy.trust.issueTicket(proxy.identity.identifier);
    const [a, b] = memoryTransportPair();
    const enrolled = await Promise.all([
      SecureChannel.initiate(a, { ...sat, ticket }),
      SecureChannel.respond(b, proxy),
    ]);
    for (const channel of enrolled) await channel.close();
    const [s, , , p] = await manInTheMiddle(sat, proxy, mallory);
    assert.ok(s.status === "rejected" && s.reason instanceof TrustError, "sat");
    assert.ok(p.status === "rejected" && p.reason instanceof TrustError, "proxy");
  });
});

Deno.test("a relay that swaps the handshake's ephemeral key breaks the handshake on both ends", async () => {
  const { sat, proxy } = await trustingPair();
  const [satEnd, relaySat] = memoryTransportPair();
  const [relayProxy, proxyEnd] = memoryTransportPair();
  let fromSat = 0;
  // The relay forwards everything, but replaces `e` (the first 32 bytes of message 1).
  const forward = async (from: MessageTransport, to: MessageTransport, swap: boolean) => {
    for (let m = await from.receive(); m; m = await from.receive()) {
      if (swap && fromSat++ === 0) m = Uint8Array.from(m, (b, i) => i < 32 ? b ^ 0x5a : b);
      await to.send(m).catch(() => {});
    }
    to.close();
  };
  const forwarding = Promise.all([
    forward(relaySat, relayProxy, true),
    forward(relayProxy, relaySat, false),
  ]);
  const [s, p] = await Promise.allSettled([
    SecureChannel.initiate(satEnd, sat),
    SecureChannel.respond(proxyEnd, proxy),
  ]);
  assert.ok(s.status === "rejected" && s.reason instanceof HandshakeError, `sat: ${s.status}`);
  assert.ok(p.status === "rejected" && p.reason instanceof HandshakeError, `proxy: ${p.status}`);
  await forwarding;
});

Deno.test("a recorded enrollment replayed to the proxy cannot reuse its ticket", async () => {
  const sat = { identity: Identity.generate(), trust: await TrustPolicy.open() };
  const proxy = { identity: Identity.generate(), trust: await TrustPolicy.open() };
  const ticket = await proxy.trust.issueTicket(proxy.identity.identifier);
  // The relay records the sat's messages of a genuine enrollment.
  const [a, b] = memoryTransportPair();
  const recorded: Uint8Array[] = [];
  const recording: MessageTransport = {
    send: (m) => {
      recorded.push(m.slice());
      return a.send(m);
    },
    receive: () => a.receive(),
    close: () => a.close(),
  };
  const enrolled = await Promise.all([
    SecureChannel.initiate(recording, { ...sat, ticket }),
    SecureChannel.respond(b, proxy),
  ]);
  await enrolled[0].send(bytes("enrolled"));
  assert.equal(text(await enrolled[1].receive()), "enrolled");
  for (const channel of enrolled) await channel.close();

  // Later the relay replays messages 1 and 3 to the proxy, as a new sat would send them.
  const [attacker, proxySide] = memoryTransportPair();
  const responding = SecureChannel.respond(proxySide, proxy);
  await attacker.send(recorded[0]!);
  const answer = await attacker.receive(); // a fresh message 2, with a fresh ephemeral key
  assert.ok(answer);
  await attacker.send(recorded[1]!);
  const error = await responding.then(() => undefined, (e) => e);
  assert.ok(error instanceof HandshakeError, `the proxy ended with ${error}`);
  assert.equal(error.stage, 2, "message 3 no longer decrypts under the new session's keys");
  assert.equal(await attacker.receive(), undefined, "no READY, no data: the transport closed");
});
