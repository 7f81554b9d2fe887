import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity, SecureChannel, TrustPolicy } from "../src/channel/mod.ts";
import {
  connectRelay,
  FORWARDING_ADDRESS_PATTERN,
  LinkError,
  type LinkNetwork,
  RegistrationError,
  type RelayClientOptions,
} from "../src/link/mod.ts";
import { connectRelayOverForTesting, type RelayConnection } from "../src/link/relay_client.ts";
import { REGISTRATIONS_FILE_NAME, type RelayLimits, RelayServer } from "../src/relay/mod.ts";
import {
  concatBytes,
  decodeRelayMessage,
  DEFAULT_LINK_WINDOW,
  encodeFrame,
  encodeRelayFrame,
  encodeRelayMessage,
  FrameDecoder,
  FrameError,
  INITIAL_LINK_CREDIT,
  MAX_LINK_MESSAGE_LEN,
  MAX_RELAY_MESSAGE_LEN,
  type MessageTransport,
  registrationMessage,
  type RelayMessage,
  TransportClosedError,
} from "../src/wire/mod.ts";

const HOST = "127.0.0.1";
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A relay on a free loopback port with a fresh state folder, and what it logged. */
class TestRelay {
  readonly logs: string[] = [];
  relay!: RelayServer;
  constructor(readonly stateDir: string) {}

  static async start(limits?: Partial<RelayLimits>, stateDir?: string): Promise<TestRelay> {
    const test = new TestRelay(stateDir ?? await Deno.makeTempDir({ prefix: "relay_test_" }));
    test.relay = await RelayServer.start({
      hostname: HOST,
      port: 0,
      stateDir: test.stateDir,
      limits,
      log: (level, message) => test.logs.push(`${level}: ${message}`),
    });
    return test;
  }

  get port(): number {
    return this.relay.addr.port;
  }

  connect(options?: RelayClientOptions): Promise<LinkNetwork> {
    return connectRelay({ hostname: HOST, port: this.port }, options);
  }

  async stop(removeState = true): Promise<void> {
    await this.relay.close();
    if (removeState) await Deno.remove(this.stateDir, { recursive: true });
  }
}

async function closeAll(...networks: LinkNetwork[]): Promise<void> {
  for (const network of networks) network.close();
  await Promise.all(networks.map((n) => n.closed));
}

/** A hand-driven protocol peer, for what a well-behaved client never sends. */
class RawNode {
  readonly #decoder = new FrameDecoder(MAX_RELAY_MESSAGE_LEN + 1024);
  readonly #buffer = new Uint8Array(64 * 1024);
  constructor(readonly conn: Deno.TcpConn) {}

  static async connect(port: number): Promise<RawNode> {
    return new RawNode(await Deno.connect({ hostname: HOST, port }));
  }

  async write(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  send(message: RelayMessage): Promise<void> {
    return this.write(encodeRelayFrame(message));
  }

  /** The next message, or undefined when the other side closed the connection. */
  async next(): Promise<RelayMessage | undefined> {
    for (;;) {
      const body = this.#decoder.next();
      if (body !== undefined) return decodeRelayMessage(body);
      let n: number | null;
      try {
        n = await this.conn.read(this.#buffer);
      } catch {
        return undefined;
      }
      if (n === null) return undefined;
      this.#decoder.push(this.#buffer.subarray(0, n));
    }
  }

  /** The next message that is not a PING. */
  async nextNotPing(): Promise<RelayMessage | undefined> {
    for (;;) {
      const message = await this.next();
      if (message?.type !== "ping") return message;
    }
  }

  /** Reads until the other side closes; returns the types seen. */
  async untilClosed(): Promise<string[]> {
    const seen: string[] = [];
    for (let m = await this.next(); m !== undefined; m = await this.next()) seen.push(m.type);
    return seen;
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Opens a link from `opener` to `listener`'s address; returns both ends. */
async function openLink(
  opener: LinkNetwork,
  listener: { address: string; accept(): Promise<MessageTransport | undefined> },
): Promise<[MessageTransport, MessageTransport]> {
  const [near, far] = await Promise.all([opener.connect(listener.address), listener.accept()]);
  assert.ok(far);
  return [near, far];
}

Deno.test("a sat opens a link to a proxy's address and both exchange messages", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const sat = await test.connect();
  try {
    const listener = await proxy.listen(Identity.generate());
    assert.match(listener.address, FORWARDING_ADDRESS_PATTERN);
    const [satEnd, proxyEnd] = await openLink(sat, listener);

    await satEnd.send(text("hello proxy"));
    assert.equal(str(await proxyEnd.receive()), "hello proxy");
    await proxyEnd.send(text("hello sat"));
    await proxyEnd.send(new Uint8Array(0));
    const big = Uint8Array.from({ length: MAX_LINK_MESSAGE_LEN }, (_, i) => (i * 31) ^ (i >> 8));
    await proxyEnd.send(big);
    assert.equal(str(await satEnd.receive()), "hello sat");
    assert.deepEqual(await satEnd.receive(), new Uint8Array(0));
    assert.deepEqual(await satEnd.receive(), big);
    await assert.rejects(() => satEnd.send(new Uint8Array(MAX_LINK_MESSAGE_LEN + 1)), RangeError);

    const stats = test.relay.stats();
    assert.equal(stats.connections, 2);
    assert.equal(stats.links, 1);
    assert.equal(stats.listeners, 1);
    satEnd.close();
    proxyEnd.close();
    listener.close();
    assert.equal(await listener.accept(), undefined);
  } finally {
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("a secure channel runs end to end over a relay link", async () => {
  const test = await TestRelay.start();
  const proxyNet = await test.connect();
  const satNet = await test.connect();
  try {
    const proxy = Identity.generate();
    const sat = Identity.generate();
    const listener = await proxyNet.listen(proxy);
    const [satEnd, proxyEnd] = await openLink(satNet, listener);
    const [satChannel, proxyChannel] = await Promise.all([
      SecureChannel.initiate(satEnd, {
        identity: sat,
        trust: await TrustPolicy.open({ allow: [proxy.identifier] }),
      }),
      SecureChannel.respond(proxyEnd, {
        identity: proxy,
        trust: await TrustPolicy.open({ allow: [sat.identifier] }),
      }),
    ]);
    const body = Uint8Array.from({ length: 60_000 }, (_, i) => i & 0xff);
    // 2.4 MB: more than a link window, so the sender waits for the reader's credit.
    const reading = (async () => {
      for (let i = 0; i < 40; i++) assert.deepEqual(await proxyChannel.receive(), body);
    })();
    for (let i = 0; i < 40; i++) await satChannel.send(body);
    await reading;
    await proxyChannel.send(text("hello, my friend"));
    assert.equal(str(await satChannel.receive()), "hello, my friend");
    await satChannel.close();
    assert.equal(await proxyChannel.receive(), undefined);
    await proxyChannel.close();
  } finally {
    await closeAll(proxyNet, satNet);
    await test.stop();
  }
});

Deno.test("many links share one connection and keep their messages apart", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const sat = await test.connect();
  try {
    const listener = await proxy.listen(Identity.generate());
    const links = await Promise.all(
      Array.from({ length: 24 }, () => openLink(sat, listener)),
    );
    // The proxy's ends arrive in an order of their own: pair them by a first message.
    const byName = new Map<string, MessageTransport>();
    await Promise.all(links.map(([near], i) => near.send(text(`link ${i}`))));
    for (const [, far] of links) byName.set(str(await far.receive())!, far);
    await Promise.all(links.map(async ([near], i) => {
      const far = byName.get(`link ${i}`)!;
      for (let k = 0; k < 20; k++) {
        await near.send(text(`${i}.${k}`));
        await far.send(text(`back ${i}.${k}`));
      }
      for (let k = 0; k < 20; k++) {
        assert.equal(str(await far.receive()), `${i}.${k}`);
        assert.equal(str(await near.receive()), `back ${i}.${k}`);
      }
    }));
    assert.equal(test.relay.stats().links, 24);
    assert.equal(test.relay.stats().connections, 2);
  } finally {
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("a node can open a link to the address it listens on itself", async () => {
  const test = await TestRelay.start();
  const node = await test.connect();
  try {
    const listener = await node.listen(Identity.generate());
    const [a, b] = await openLink(node, listener);
    await a.send(text("to myself"));
    assert.equal(str(await b.receive()), "to myself");
    a.close();
    assert.equal(await b.receive(), undefined);
  } finally {
    await closeAll(node);
    await test.stop();
  }
});

Deno.test("an address survives a relay restart and its identity reclaims it", async () => {
  const identity = Identity.generate();
  const first = await TestRelay.start();
  let address: string;
  const proxy = await first.connect();
  try {
    address = (await proxy.listen(identity)).address;
  } finally {
    await closeAll(proxy);
    await first.stop(false);
  }
  const file = join(first.stateDir, REGISTRATIONS_FILE_NAME);
  const saved = JSON.parse(await Deno.readTextFile(file));
  assert.equal(saved.registrations[address].identifier, identity.identifier);
  if (Deno.build.os !== "windows") assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);

  const second = await TestRelay.start(undefined, first.stateDir);
  const again = await second.connect();
  const sat = await second.connect();
  try {
    assert.equal(second.relay.stats().registrations, 1);
    const listener = await again.listen(identity, { address });
    assert.equal(listener.address, address);
    const [satEnd, proxyEnd] = await openLink(sat, listener);
    await satEnd.send(text("after the restart"));
    assert.equal(str(await proxyEnd.receive()), "after the restart");
  } finally {
    await closeAll(again, sat);
    await second.stop();
  }
});

Deno.test("a well-formed address nobody holds is granted and recorded", async () => {
  const test = await TestRelay.start();
  const node = await test.connect();
  try {
    const wanted = "FWD_0123456789abcdef";
    const listener = await node.listen(Identity.generate(), { address: wanted });
    assert.equal(listener.address, wanted);
    const saved = JSON.parse(await Deno.readTextFile(join(test.stateDir, REGISTRATIONS_FILE_NAME)));
    assert.ok(saved.registrations[wanted]);
    await assert.rejects(
      () => node.listen(Identity.generate(), { address: "FWD_nope" }),
      TypeError,
    );
  } finally {
    await closeAll(node);
    await test.stop();
  }
});

Deno.test("another identity cannot take over a registered address", async () => {
  const test = await TestRelay.start();
  const owner = await test.connect();
  const thief = await test.connect();
  try {
    const { address } = await owner.listen(Identity.generate());
    await assert.rejects(
      () => thief.listen(Identity.generate(), { address }),
      (error: Error) =>
        error instanceof RegistrationError && /belongs to another identity/.test(error.message),
    );
    owner.close();
    await owner.closed;
    // Still refused while the owner is offline.
    await assert.rejects(() => thief.listen(Identity.generate(), { address }), RegistrationError);
    assert.ok(test.logs.some((line) => /belongs to another identity/.test(line)));
  } finally {
    await closeAll(owner, thief);
    await test.stop();
  }
});

Deno.test("the owner's new connection takes over its address from the old one", async () => {
  const test = await TestRelay.start();
  const identity = Identity.generate();
  const old = await test.connect();
  const fresh = await test.connect();
  const sat = await test.connect();
  try {
    const oldListener = await old.listen(identity);
    const pendingAccept = oldListener.accept();
    const newListener = await fresh.listen(identity, { address: oldListener.address });
    assert.equal(newListener.address, oldListener.address);
    assert.equal(await pendingAccept, undefined); // the old listener role ended
    const [satEnd, proxyEnd] = await openLink(sat, newListener);
    await satEnd.send(text("to the new one"));
    assert.equal(str(await proxyEnd.receive()), "to the new one");
  } finally {
    await closeAll(old, fresh, sat);
    await test.stop();
  }
});

Deno.test("a registration with a forged signature is refused", async () => {
  const test = await TestRelay.start();
  const node = await test.connect();
  const raw = await RawNode.connect(test.port);
  try {
    const victim = Identity.generate();
    const forger = Identity.generate();
    await assert.rejects(
      () => node.listen({ publicKey: victim.publicKey, sign: (m) => forger.sign(m) }),
      (error: Error) => error instanceof RegistrationError && /signature/.test(error.message),
    );
    // A signature over another connection's challenge does not verify either.
    const challenge = await raw.next();
    assert.equal(challenge?.type, "challenge");
    const replayed = victim.sign(registrationMessage(new Uint8Array(32), ""));
    await raw.send({
      type: "register",
      publicKey: victim.publicKey,
      address: "",
      signature: replayed,
    });
    const answer = await raw.nextNotPing();
    assert.equal(answer?.type, "refused");
    // The connection stays usable for an honest registration.
    const listener = await node.listen(victim);
    assert.match(listener.address, FORWARDING_ADDRESS_PATTERN);
    assert.ok(test.logs.some((line) => /signature/.test(line)));
  } finally {
    raw.close();
    await closeAll(node);
    await test.stop();
  }
});

Deno.test("opening a link to an unknown or offline address fails with LinkError", async () => {
  const test = await TestRelay.start();
  const owner = await test.connect();
  const sat = await test.connect();
  try {
    await assert.rejects(
      () => sat.connect("FWD_00000000000000ff"),
      (error: Error) =>
        error instanceof LinkError && /no such forwarding address/.test(error.message),
    );
    const { address } = await owner.listen(Identity.generate());
    owner.close();
    await owner.closed;
    await assert.rejects(
      () => sat.connect(address),
      (error: Error) => error instanceof LinkError && /offline/.test(error.message),
    );
    await assert.rejects(() => sat.connect("not-an-address"), TypeError);
  } finally {
    await closeAll(owner, sat);
    await test.stop();
  }
});

Deno.test("closing one end of a link closes the other after what was sent", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const sat = await test.connect();
  try {
    const listener = await proxy.listen(Identity.generate());
    const [satEnd, proxyEnd] = await openLink(sat, listener);
    const pending = satEnd.receive();
    await proxyEnd.send(text("last words"));
    proxyEnd.close();
    assert.equal(str(await pending), "last words");
    assert.equal(await satEnd.receive(), undefined);
    await assert.rejects(() => satEnd.send(text("too late")), TransportClosedError);
    await assert.rejects(() => proxyEnd.send(text("too late")), TransportClosedError);
    assert.equal(await proxyEnd.receive(), undefined);
    for (let i = 0; i < 50 && test.relay.stats().links > 0; i++) await delay(5);
    assert.equal(test.relay.stats().links, 0);
  } finally {
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("losing a connection closes every link on it", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const sat = await test.connect();
  try {
    const listener = await proxy.listen(Identity.generate());
    const links = await Promise.all([1, 2, 3].map(() => openLink(sat, listener)));
    sat.close();
    assert.equal(await sat.closed, undefined);
    for (const [satEnd, proxyEnd] of links) {
      assert.equal(await proxyEnd.receive(), undefined);
      assert.equal(await satEnd.receive(), undefined);
      await assert.rejects(() => satEnd.send(text("x")), TransportClosedError);
    }
    await assert.rejects(() => sat.connect(listener.address), LinkError);
    // When the relay goes away, the node learns it from `closed`.
    await test.relay.close();
    const error = await proxy.closed;
    assert.ok(error instanceof LinkError);
    assert.equal(await listener.accept(), undefined);
  } finally {
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("a malformed frame closes that connection only", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const sat = await test.connect();
  const raw = await RawNode.connect(test.port);
  try {
    const listener = await proxy.listen(Identity.generate());
    const [satEnd, proxyEnd] = await openLink(sat, listener);
    assert.equal((await raw.next())?.type, "challenge");
    await raw.write(encodeFrame(Uint8Array.of(0x7f, 1, 2, 3))); // unknown type
    assert.deepEqual(await raw.untilClosed(), []);
    await satEnd.send(text("still served"));
    assert.equal(str(await proxyEnd.receive()), "still served");
    assert.ok(
      test.logs.some((line) => /^warn: .*broke the protocol.*unknown relay message/.test(line)),
    );
  } finally {
    raw.close();
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("an oversized frame closes that connection only", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const sat = await test.connect();
  const raw = await RawNode.connect(test.port);
  try {
    const listener = await proxy.listen(Identity.generate());
    const [satEnd, proxyEnd] = await openLink(sat, listener);
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, MAX_RELAY_MESSAGE_LEN + 1);
    await raw.write(prefix);
    await raw.untilClosed();
    await proxyEnd.send(text("still served"));
    assert.equal(str(await satEnd.receive()), "still served");
    assert.ok(test.logs.some((line) => /^warn: .*exceeds the maximum/.test(line)));
  } finally {
    raw.close();
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("a node that sends DATA beyond its credit loses its connection", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const raw = await RawNode.connect(test.port);
  try {
    const listener = await proxy.listen(Identity.generate());
    assert.equal((await raw.next())?.type, "challenge");
    await raw.send({ type: "open", linkId: 1, address: listener.address });
    assert.equal((await raw.nextNotPing())?.type, "opened");
    const far = await listener.accept();
    assert.ok(far);
    // The listener granted its whole window; send more than that without reading.
    const chunk = new Uint8Array(64 * 1024);
    const sends = (async () => {
      try {
        for (let i = 0; i <= DEFAULT_LINK_WINDOW / chunk.length; i++) {
          await raw.send({ type: "data", linkId: 1, data: chunk });
        }
      } catch {
        // The relay cut us off mid-way.
      }
    })();
    const seen = await raw.untilClosed();
    await sends;
    assert.ok(seen.includes("credit")); // the listener's grant arrived
    assert.ok(test.logs.some((line) => /^warn: .*exceeds the \d+ bytes of credit/.test(line)));
    assert.equal(await far.receive() !== undefined, true);
  } finally {
    raw.close();
    await closeAll(proxy);
    await test.stop();
  }
});

Deno.test("a link whose reader does not read stalls only itself and the relay stays bounded", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const sat = await test.connect();
  try {
    const listener = await proxy.listen(Identity.generate());
    const [slowNear, slowFar] = await openLink(sat, listener);
    const [fastNear, fastFar] = await openLink(sat, listener);

    const message = new Uint8Array(64 * 1024);
    let sent = 0;
    const fit = DEFAULT_LINK_WINDOW / message.length;
    const total = 3 * fit;
    // One buffer for every send: the link is done with a message when send returns, whether it
    // went out or waits for credit.
    assert.equal(slowNear.copiesMessages, true);
    const sends = Array.from({ length: total }, (_, i) => {
      message[0] = i % 256;
      return slowNear.send(message).then(() => void sent++);
    });
    // The window holds `fit` of them; the rest wait for credit.
    for (let i = 0; i < 400 && sent < fit; i++) await delay(5);
    await delay(50);
    assert.equal(sent, fit);
    assert.ok(test.relay.stats().queuedBytes <= DEFAULT_LINK_WINDOW + 4096);

    for (let i = 0; i < 100; i++) {
      await fastNear.send(text(`ping ${i}`));
      assert.equal(str(await fastFar.receive()), `ping ${i}`);
      await fastFar.send(text(`pong ${i}`));
      assert.equal(str(await fastNear.receive()), `pong ${i}`);
    }
    assert.equal(sent, fit);

    for (let i = 0; i < total; i++) {
      const got = await slowFar.receive();
      assert.equal(got?.length, message.length);
      assert.equal(got![0], i % 256);
    }
    await Promise.all(sends);
    assert.equal(sent, total);
  } finally {
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("a node that does not read what it is sent loses its connection, bounding the relay", async () => {
  const maxQueuedBytes = 600_000;
  const test = await TestRelay.start({ maxQueuedBytes });
  const sat = await test.connect();
  const stuck = await RawNode.connect(test.port);
  try {
    const challenge = await stuck.next();
    assert.ok(challenge?.type === "challenge");
    const identity = Identity.generate();
    const signature = identity.sign(registrationMessage(challenge.challenge, ""));
    await stuck.send({ type: "register", publicKey: identity.publicKey, address: "", signature });
    const registered = await stuck.nextNotPing();
    assert.ok(registered?.type === "registered");
    // From now on `stuck` reads nothing. Each link may send it INITIAL_LINK_CREDIT bytes.
    const links = await Promise.all(
      Array.from({ length: 160 }, () => sat.connect(registered.address)),
    );
    let peak = 0;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        peak = Math.max(peak, test.relay.stats().queuedBytes);
        await delay(1);
      }
    })();
    const chunk = new Uint8Array(INITIAL_LINK_CREDIT / 4);
    await Promise.all(links.map(async (link) => {
      for (let i = 0; i < 4; i++) await link.send(chunk).catch(() => {});
    }));
    for (const link of links) assert.equal(await link.receive(), undefined);
    polling = false;
    await poll;
    assert.ok(test.logs.some((line) => /^warn: .*does not read/.test(line)));
    assert.ok(peak <= maxQueuedBytes + MAX_RELAY_MESSAGE_LEN + 4, `peak ${peak}`);
    assert.equal(test.relay.stats().connections, 1);
    assert.equal(test.relay.stats().queuedBytes, 0);
  } finally {
    stuck.close();
    await closeAll(sat);
    await test.stop();
  }
});

Deno.test("a client closes its connection to a relay that breaks the protocol", async () => {
  const fake = Deno.listen({ hostname: HOST, port: 0 });
  const accepted = fake.accept();
  const connecting = connectRelay({ hostname: HOST, port: fake.addr.port });
  const relaySide = new RawNode(await accepted);
  fake.close();
  try {
    await relaySide.send({ type: "challenge", challenge: new Uint8Array(32) });
    const node = await connecting;
    const opening = node.connect(ADDRESS);
    const open = await relaySide.next();
    assert.ok(open?.type === "open");
    await relaySide.send({ type: "opened", linkId: open.linkId });
    const link = await opening;
    // The node granted its whole window; send more without waiting for credit.
    const data = new Uint8Array(MAX_LINK_MESSAGE_LEN);
    for (let i = 0; i <= Math.ceil(DEFAULT_LINK_WINDOW / data.length); i++) {
      await relaySide.send({ type: "data", linkId: open.linkId, data }).catch(() => {});
    }
    const error = await node.closed;
    assert.ok(error instanceof LinkError);
    assert.match(error.message, /broke the protocol.*credit/);
    assert.equal((await link.receive())?.length, MAX_LINK_MESSAGE_LEN); // what arrived in time
  } finally {
    relaySide.close();
  }
});

Deno.test("a node that stops answering heartbeats is dropped after the idle timeout", async () => {
  const test = await TestRelay.start({ heartbeatIntervalMs: 50, idleTimeoutMs: 300 });
  const started = Date.now();
  const silent = await RawNode.connect(test.port);
  const proxy = await test.connect();
  const sat = await test.connect();
  try {
    const listener = await proxy.listen(Identity.generate());
    const seen = await silent.untilClosed(); // reads, never answers
    assert.ok(Date.now() - started >= 290);
    assert.equal(seen[0], "challenge");
    assert.ok(seen.includes("ping"));
    assert.ok(test.logs.some((line) => /silent connection/.test(line)));
    // Clients answer PING, so they are still connected.
    const [satEnd, proxyEnd] = await openLink(sat, listener);
    await satEnd.send(text("alive"));
    assert.equal(str(await proxyEnd.receive()), "alive");
    assert.equal(test.relay.stats().connections, 2);
  } finally {
    silent.close();
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("a client drops a relay that goes silent", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const accepted = listener.accept();
  const network = connectRelay({ hostname: HOST, port: listener.addr.port }, {
    heartbeatIntervalMs: 30,
    idleTimeoutMs: 100,
  });
  const conn = await accepted;
  listener.close();
  try {
    await conn.write(encodeRelayFrame({ type: "challenge", challenge: new Uint8Array(32) }));
    const node = await network;
    const error = await node.closed;
    assert.ok(error instanceof LinkError);
    assert.match(error.message, /silent/);
  } finally {
    conn.close();
  }
});

Deno.test("a client refuses a server that never sends CHALLENGE", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const accepted = listener.accept();
  const network = connectRelay({ hostname: HOST, port: listener.addr.port }, {
    requestTimeoutMs: 50,
  });
  const conn = await accepted;
  listener.close();
  try {
    await assert.rejects(
      network,
      (error: Error) => error instanceof LinkError && /CHALLENGE/.test(error.message),
    );
  } finally {
    conn.close();
  }
  await assert.rejects(
    () => connectRelay({ hostname: HOST, port: listener.addr.port }),
    LinkError,
  );
});

Deno.test("the relay enforces its connection and link limits", async () => {
  const test = await TestRelay.start({ maxConnections: 2, maxLinksPerConnection: 2 });
  const proxy = await test.connect();
  const sat = await test.connect();
  try {
    await assert.rejects(() => test.connect(), LinkError); // closed on accept: no CHALLENGE
    assert.ok(test.logs.some((line) => /connection limit/.test(line)));
    const listener = await proxy.listen(Identity.generate());
    await openLink(sat, listener);
    await openLink(sat, listener);
    await assert.rejects(
      () => sat.connect(listener.address),
      (error: Error) => error instanceof LinkError && /maximum of 2 links/.test(error.message),
    );
  } finally {
    await closeAll(proxy, sat);
    await test.stop();
  }
});

Deno.test("RelayServer.start rejects bad limits and a malformed registrations file", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "relay_test_" });
  try {
    const start = (limits: Record<string, unknown>) =>
      RelayServer.start({
        hostname: HOST,
        port: 0,
        stateDir,
        limits: limits as Partial<RelayLimits>,
      });
    await assert.rejects(() => start({ maxLinksPerConnection: 0 }), RangeError);
    await assert.rejects(() => start({ linkWindow: INITIAL_LINK_CREDIT - 1 }), RangeError);
    await assert.rejects(() => start({ heartbeatIntervalMs: 100, idleTimeoutMs: 100 }), RangeError);
    await assert.rejects(() => start({ maxLinks: 3 }), TypeError);
    const file = join(stateDir, REGISTRATIONS_FILE_NAME);
    await Deno.writeTextFile(file, `{"version":1,"registrations":{"FWD_x":{}}}`, { mode: 0o600 });
    await assert.rejects(() => start({}), /not a forwarding address/);
    await Deno.writeTextFile(file, "{", { mode: 0o600 });
    await assert.rejects(() => start({}), SyntaxError);
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});

// --- codec ---

const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const SIG = Uint8Array.from({ length: 64 }, (_, i) => 255 - i);
const ADDRESS = "FWD_0123456789abcdef";

const SAMPLES: readonly RelayMessage[] = [
  { type: "challenge", challenge: KEY },
  { type: "register", publicKey: KEY, address: "", signature: SIG },
  { type: "register", publicKey: KEY, address: ADDRESS, signature: SIG },
  { type: "registered", address: ADDRESS },
  { type: "refused", reason: "FWD_x belongs to another identity — non-ASCII ok" },
  { type: "open", linkId: 0x7fff_ffff, address: ADDRESS },
  { type: "incoming", linkId: 0x8000_0001 },
  { type: "opened", linkId: 7 },
  { type: "open-failed", linkId: 7, reason: "offline" },
  { type: "data", linkId: 0xffff_ffff, data: Uint8Array.of(1, 2, 3) },
  { type: "data", linkId: 0, data: new Uint8Array(0) },
  { type: "credit", linkId: 3, bytes: 65536 },
  { type: "close", linkId: 0x8000_0000 },
  { type: "ping" },
  { type: "pong" },
];

Deno.test("relay messages of every type survive an encode/decode round trip", () => {
  for (const message of SAMPLES) {
    const body = encodeRelayMessage(message);
    assert.deepEqual(decodeRelayMessage(body), message);
    const frame = encodeRelayFrame(message);
    assert.deepEqual(frame.subarray(4), body);
    assert.equal(new DataView(frame.buffer).getUint32(0), body.length);
  }
});

Deno.test("decodeRelayMessage rejects every truncation and trailing byte", async (t) => {
  for (const message of SAMPLES) {
    await t.step(`${message.type} ${encodeRelayMessage(message).length} bytes`, () => {
      const body = encodeRelayMessage(message);
      // DATA's payload is the rest of the frame: only its header can be cut short.
      const shortest = message.type === "data" ? 5 : body.length;
      for (let n = 0; n < shortest; n++) {
        assert.throws(() => decodeRelayMessage(body.subarray(0, n)), FrameError, `cut at ${n}`);
      }
      if (message.type !== "data") {
        const longer = new Uint8Array(body.length + 1);
        longer.set(body);
        assert.throws(() => decodeRelayMessage(longer), FrameError);
      }
    });
  }
});

Deno.test("decodeRelayMessage rejects unknown types and out-of-range fields", () => {
  for (const type of [0x00, 0x0e, 0x7f, 0xff]) {
    assert.throws(() => decodeRelayMessage(Uint8Array.of(type)), FrameError);
  }
  const bad = (bytes: number[], pattern: RegExp) =>
    assert.throws(
      () => decodeRelayMessage(Uint8Array.from(bytes)),
      (error: Error) => error instanceof FrameError && pattern.test(error.message),
    );
  bad([0x0a, 0, 0, 0, 1, 0, 0, 0, 0], /CREDIT of 0/);
  bad([0x06, 0, 0, 0, 1], /top bit/); // INCOMING with a node-picked id
  bad([0x07, 0x80, 0, 0, 1], /top bit/); // OPENED with a relay-picked id
  const open = encodeRelayMessage({ type: "open", linkId: 1, address: ADDRESS });
  open[open.length - 1] = 0x41; // "A": upper-case hex
  assert.throws(() => decodeRelayMessage(open), FrameError);
  const registered = encodeRelayMessage({ type: "registered", address: ADDRESS });
  registered[1] = 0; // the empty address only in REGISTER
  assert.throws(() => decodeRelayMessage(registered.subarray(0, 2)), FrameError);
  bad([0x04, 0, 2, 0xc3, 0x28], /UTF-8/);
  bad([0x04, 0x04, 0x01], /exceeds/);
  assert.throws(() => decodeRelayMessage(new Uint8Array(MAX_RELAY_MESSAGE_LEN + 1)), FrameError);
  assert.throws(() => decodeRelayMessage(new Uint8Array(0)), FrameError);
  // Encoding refuses what decoding would refuse.
  assert.throws(() => encodeRelayMessage({ type: "incoming", linkId: 1 }), RangeError);
  assert.throws(() => encodeRelayMessage({ type: "credit", linkId: 1, bytes: 0 }), RangeError);
  assert.throws(() => encodeRelayMessage({ type: "registered", address: "FWD_1" }), TypeError);
  assert.throws(
    () => encodeRelayMessage({ type: "refused", reason: "x".repeat(1025) }),
    RangeError,
  );
});

Deno.test("connections from one IP address beyond its limit are refused and counted", async () => {
  const test = await TestRelay.start({ maxConnectionsPerIp: 2 });
  try {
    const a = await RawNode.connect(test.port);
    const b = await RawNode.connect(test.port);
    assert.equal((await a.next())?.type, "challenge");
    assert.equal((await b.next())?.type, "challenge");
    const c = await RawNode.connect(test.port);
    assert.deepEqual(await c.untilClosed(), [], "the third connection gets nothing");
    assert.deepEqual(test.relay.stats().refused, { connections: 0, perIp: 1 });
    assert.equal(test.relay.stats().connections, 2);
    assert.ok(test.logs.some((l) => l.includes("its address is at its connection limit")));
    // A slot freed is a slot again.
    a.close();
    for (let i = 0; i < 100 && test.relay.stats().connections > 1; i++) await delay(10);
    const d = await RawNode.connect(test.port);
    assert.equal((await d.next())?.type, "challenge");
    for (const node of [b, c, d]) node.close();
  } finally {
    await test.stop();
  }
});

Deno.test("the relay counts the DATA bytes it forwards", async () => {
  const test = await TestRelay.start();
  const proxy = await test.connect();
  const sat = await test.connect();
  try {
    const listener = await proxy.listen(Identity.generate());
    const [near, far] = await openLink(sat, listener);
    const before = test.relay.stats().bytesForwarded;
    await near.send(new Uint8Array(1000));
    assert.equal((await far.receive())?.length, 1000);
    assert.ok(test.relay.stats().bytesForwarded - before >= 1000);
  } finally {
    await closeAll(proxy, sat);
    await test.stop();
  }
});

/**
 * The relay's side of a connection, played by the test: every read finds bytes ready (it
 * resolves at once and fills the buffer while it has them), as a socket does that a relay keeps
 * full. OPEN is answered with OPENED, then `stream` bytes of DATA frames follow on that link.
 */
class ReadyRelayConnection implements RelayConnection {
  readonly #decoder = new FrameDecoder(MAX_RELAY_MESSAGE_LEN);
  #pending = encodeRelayFrame({ type: "challenge", challenge: new Uint8Array(32) });
  #wake: ((n: number | null) => void) | undefined;
  #waiting: Uint8Array | undefined;
  #closed = false;
  constructor(readonly stream: Uint8Array[]) {}

  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.resolve(null);
    if (this.#pending.length === 0) {
      this.#waiting = buffer;
      return new Promise((resolve) => (this.#wake = resolve));
    }
    return Promise.resolve(this.#fill(buffer));
  }

  write(bytes: Uint8Array): Promise<number> {
    this.#decoder.push(bytes); // copied by the decoder
    for (let body = this.#decoder.next(); body !== undefined; body = this.#decoder.next()) {
      const message = decodeRelayMessage(body);
      if (message.type !== "open") continue;
      const frames = [encodeRelayFrame({ type: "opened", linkId: message.linkId })];
      for (const data of this.stream) {
        frames.push(encodeRelayFrame({ type: "data", linkId: message.linkId, data }));
      }
      this.#pending = concatBytes(frames);
      const [wake, buffer] = [this.#wake, this.#waiting];
      this.#wake = this.#waiting = undefined;
      wake?.(this.#fill(buffer!));
    }
    return Promise.resolve(bytes.length);
  }

  close(): void {
    this.#closed = true;
    this.#wake?.(null);
  }

  setNoDelay(): void {}

  #fill(buffer: Uint8Array): number {
    const n = Math.min(buffer.length, this.#pending.length);
    buffer.set(this.#pending.subarray(0, n));
    this.#pending = this.#pending.subarray(n);
    return n;
  }
}

Deno.test("a client reading a connection that stays full still lets other tasks run", async () => {
  // A link window of 64 KiB messages: with every read full, the client's read loop never waits
  // for the socket, and must itself give the event loop turns (a Wasm worker asking for the
  // next chunk of a body, the credit it owes, timers wait for one).
  const stream = Array.from(
    { length: DEFAULT_LINK_WINDOW / (64 * 1024) },
    (_, i) => new Uint8Array(64 * 1024).fill(i),
  );
  const network = await connectRelayOverForTesting(new ReadyRelayConnection(stream), "test");
  try {
    const link = await network.connect(ADDRESS);
    let received = 0;
    let receivedAtNextTurn: number | undefined;
    setImmediate(() => (receivedAtNextTurn = received));
    for (const sent of stream) {
      const message = await link.receive();
      assert.deepEqual(message, sent);
      received++;
    }
    assert.ok(receivedAtNextTurn !== undefined);
    assert.ok(
      receivedAtNextTurn < stream.length / 4,
      `the next turn came after ${receivedAtNextTurn} of ${stream.length} messages`,
    );
  } finally {
    network.close();
    await network.closed;
  }
});
