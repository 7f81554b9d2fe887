/**
 * In-process fuzzing of every parser an outsider can reach: relay frames (length framing and
 * the relay codec), Noise handshake messages, transport frames, invocation messages (with the
 * deployment transfers), Directive YAML and HTTP requests at the proxy handler. Each surface
 * runs at least 100k cases (STRATOS_FUZZ_CASES, STRATOS_LONG=1) mutated from valid samples or
 * random; a decoder must return a valid value or throw its documented error type. Stateful
 * parsers (relay server, secure channel responder, a channel's receive loop) get mutated
 * streams through real objects: only the one connection or session may end.
 *
 * A failure names the case seed; `STRATOS_FUZZ_SEED=0x... deno test ... tests/fuzz_test.ts`
 * replays it alone.
 */
import assert from "node:assert/strict";
import { join as joinPath } from "node:path";
import {
  CHANNEL_PROTOCOL,
  CipherState,
  HandshakeError,
  HandshakeState,
  Identity,
  type KeyPair,
  nativeBackend,
  SecureChannel,
  SessionClosedError,
  TransportSession,
  TrustError,
  TrustPolicy,
} from "../src/channel/mod.ts";
import { CHANNEL_PROLOGUE } from "../src/channel/secure_channel.ts";
import { SILENT_LOGGER } from "../src/cli/mod.ts";
import { DirectiveError, parseDirective } from "../src/directive/mod.ts";
import {
  bodyBytes,
  BodyError,
  decodeInvocationMessage,
  InvocationProtocolError,
  type InvokeHeader,
  OutputTooLargeError,
  SatConnection,
  SatGoneError,
  serveInvocations,
} from "../src/invocation/mod.ts";
import {
  BLOB,
  BODY,
  DEPLOY,
  encodeBody,
  encodeCancel,
  encodeHello,
  encodePing,
  encodeReady,
  encodeWindow,
  encodeWithBody,
  INVOKE,
  PING,
  PONG,
  RESULT,
} from "../src/invocation/invocation_codec.ts";
import { MAX_PENDING_BYTES, Transfers } from "../src/invocation/_transfers.ts";
import { createProxyHandler, routeResolver, SatRegistry } from "../src/proxy/mod.ts";
import {
  decodeRelayMessage,
  encodeFrame,
  encodeRelayMessage,
  FrameDecoder,
  FrameError,
  memoryTransportPair,
  type MessageTransport,
  type RelayMessage,
} from "../src/wire/mod.ts";
import {
  expectErrorType,
  fuzz,
  fuzzAsync,
  fuzzCases,
  heapMiB,
  join,
  mutate,
  mutateText,
  Prng,
} from "./_fuzz.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const encoder = new TextEncoder();
const bytes = (s: string) => encoder.encode(s);
/** After every surface, the heap must stay below this: nothing a case made may be retained. */
const HEAP_BOUND_MIB = 384;
const backend = nativeBackend;

function assertHeapBounded(surface: string): void {
  const used = heapMiB();
  assert.ok(
    used < HEAP_BOUND_MIB,
    `${surface}: heap in use is ${used.toFixed(0)} MiB after the run, above ${HEAP_BOUND_MIB} MiB`,
  );
}

// ---------------------------------------------------------------------------------------------
// Relay frames

const ADDRESS = "FWD_0123456789abcdef";
const RELAY_SAMPLES: readonly RelayMessage[] = [
  { type: "challenge", challenge: new Uint8Array(32).fill(7) },
  {
    type: "register",
    publicKey: new Uint8Array(32).fill(1),
    address: ADDRESS,
    signature: new Uint8Array(64).fill(2),
  },
  {
    type: "register",
    publicKey: new Uint8Array(32).fill(3),
    address: "",
    signature: new Uint8Array(64).fill(4),
  },
  { type: "registered", address: ADDRESS },
  { type: "refused", reason: "no: ünïcödé reason" },
  { type: "open", linkId: 1, address: ADDRESS },
  { type: "incoming", linkId: 0x8000_0001 },
  { type: "opened", linkId: 0x7fff_ffff },
  { type: "open-failed", linkId: 5, reason: "offline" },
  { type: "data", linkId: 9, data: bytes("ciphertext") },
  { type: "data", linkId: 0xffff_ffff, data: new Uint8Array(0) },
  { type: "credit", linkId: 2, bytes: 65536 },
  { type: "close", linkId: 3 },
  { type: "ping" },
  { type: "pong" },
];
const RELAY_BODIES = RELAY_SAMPLES.map((m) => encodeRelayMessage(m));
// The link id, u8 address length and u16 reason length sit here in most bodies.
const RELAY_FIELDS = [
  { offset: 1, size: 4 },
  { offset: 33, size: 1 },
  { offset: 5, size: 1 },
  { offset: 1, size: 2 },
  { offset: 5, size: 2 },
  { offset: 5, size: 4 },
] as const;

function relayInput(rng: Prng): Uint8Array {
  if (rng.oneIn(8)) return rng.bytes(rng.size(300));
  return mutate(rng, rng.pick(RELAY_BODIES), { corpus: RELAY_BODIES, lengthFields: RELAY_FIELDS });
}

Deno.test("fuzz: decodeRelayMessage returns a canonical message or throws FrameError", () => {
  const cases = fuzz("relay message", { seed: 0x0e1a_0001 }, (rng, record) => {
    const input = relayInput(rng);
    record(input);
    let message: RelayMessage;
    try {
      message = decodeRelayMessage(input);
    } catch (error) {
      expectErrorType(error, [FrameError]);
      return;
    }
    // Strict decoding: whatever it accepts re-encodes to exactly the same bytes.
    assert.deepEqual(encodeRelayMessage(message), input, "accepted a non-canonical message");
  });
  assertHeapBounded("relay message");
  assert.ok(cases >= 1);
});

Deno.test("fuzz: FrameDecoder splits mutated streams or throws FrameError, bounded", () => {
  const max = 4096;
  fuzz("length framing", { seed: 0x0e1a_0002, cases: fuzzCases(50_000) }, (rng, record) => {
    const frames = Array.from({ length: 1 + rng.int(4) }, () => encodeFrame(relayInput(rng)));
    const stream = rng.oneIn(6)
      ? rng.bytes(rng.size(64))
      : mutate(rng, join(...frames), { lengthFields: [{ offset: 0, size: 4 }] });
    record(stream);
    // The same cuts through push() (copies) and feed() (in place where it can, chunks reused
    // once read): the same frames, the same error.
    const decoder = new FrameDecoder(max);
    const fed = new FrameDecoder(max);
    let at = 0;
    let total = 0;
    let failure: unknown;
    try {
      while (at < stream.length) {
        const n = 1 + rng.int(stream.length - at);
        const piece = stream.subarray(at, at + n);
        decoder.push(piece);
        const reused = piece.slice();
        if (rng.oneIn(4)) fed.push(reused);
        else fed.feed(reused);
        at += n;
        for (let f = decoder.nextView(); f !== undefined; f = decoder.nextView()) {
          assert.ok(f.length <= max, `a frame of ${f.length} bytes passed a max of ${max}`);
          assert.deepEqual(fed.nextView(), f, "feed() and push() disagree");
          total += 4 + f.length;
        }
        assert.equal(fed.nextView(), undefined, "feed() found a frame push() did not");
        reused.fill(0xee); // the reader reuses its buffer: fed frames must not depend on it
        // Never more than one frame plus what is being pushed is held.
        assert.ok(decoder.buffered <= max + 4 + stream.length);
        assert.equal(fed.buffered, decoder.buffered);
      }
    } catch (error) {
      expectErrorType(error, [FrameError]);
      failure = error;
    }
    if (failure !== undefined) {
      // feed() refuses the same frame, at the latest when asked for it.
      assert.throws(() => {
        for (let f = fed.nextView(); f !== undefined; f = fed.nextView()) { /* drain */ }
      }, FrameError);
      return;
    }
    assert.equal(total + decoder.buffered, stream.length, "bytes were lost or invented");
  });
  assertHeapBounded("length framing");
});

// ---------------------------------------------------------------------------------------------
// Noise handshake messages

/** Valid XX messages 1, 2 and 3 of one handshake with fixed keys, and the keys. */
function recordHandshake() {
  const keys = {
    is: backend.dh.generateKeyPair(),
    ie: backend.dh.generateKeyPair(),
    rs: backend.dh.generateKeyPair(),
    re: backend.dh.generateKeyPair(),
  };
  const i = initiator(keys);
  const r = responder(keys);
  const m1 = i.writeMessage(new Uint8Array(0));
  r.readMessage(m1);
  const m2 = r.writeMessage(new Uint8Array(98).fill(9));
  i.readMessage(m2);
  const m3 = i.writeMessage(new Uint8Array(98).fill(8));
  r.readMessage(m3);
  return { keys, m1, m2, m3 };
}

type HandshakeKeys = Record<"is" | "ie" | "rs" | "re", KeyPair>;
const initiator = (k: HandshakeKeys) =>
  new HandshakeState(CHANNEL_PROTOCOL, true, {
    backend,
    prologue: CHANNEL_PROLOGUE,
    s: k.is,
    ephemeralForTesting: k.ie,
  });
const responder = (k: HandshakeKeys) =>
  new HandshakeState(CHANNEL_PROTOCOL, false, {
    backend,
    prologue: CHANNEL_PROLOGUE,
    s: k.rs,
    ephemeralForTesting: k.re,
  });

Deno.test("fuzz: HandshakeState.readMessage returns a payload or throws HandshakeError", () => {
  const { keys, m1, m2, m3 } = recordHandshake();
  const corpus = [m1, m2, m3];
  const mutated = (rng: Prng, sample: Uint8Array) =>
    rng.oneIn(10) ? rng.bytes(rng.size(300)) : mutate(rng, sample, { corpus });
  const counts = [0, 0, 0];
  const ran = fuzz("handshake message", { seed: 0x0e1a_0003 }, (rng, record) => {
    // Message 1 is cheap to reach; 2 and 3 cost 2 to 3 X25519 operations (about 120 µs each
    // here) per case, so they get 1/16 and 1/32 of the cases (6k and 3k of the default 100k).
    const roll = rng.int(32);
    const stage = roll < 29 ? 0 : roll < 31 ? 1 : 2;
    counts[stage]!++;
    let reader: HandshakeState;
    let input: Uint8Array;
    if (stage === 0) {
      reader = responder(keys);
      input = mutated(rng, m1);
    } else if (stage === 1) {
      reader = initiator(keys);
      reader.writeMessage(new Uint8Array(0));
      input = mutated(rng, m2);
    } else {
      reader = responder(keys);
      reader.readMessage(m1);
      reader.writeMessage(new Uint8Array(98).fill(9));
      input = mutated(rng, m3);
    }
    record({ stage, message: input.toHex() });
    const valid = [m1, m2, m3][stage]!;
    try {
      const payload = reader.readMessage(input);
      // Messages 2 and 3 are authenticated: only the genuine bytes may pass.
      if (stage > 0) assert.deepEqual(input, valid, "a tampered message was accepted");
      assert.ok(payload instanceof Uint8Array);
    } catch (error) {
      expectErrorType(error, [HandshakeError]);
      assert.throws(() => reader.readMessage(valid), TypeError, "a failed state must stay failed");
    }
  });
  assertHeapBounded("handshake message");
  assert.ok(counts.every((n) => n > 0) || ran < 1000, `stages hit: ${counts}`);
});

// ---------------------------------------------------------------------------------------------
// Transport frames

const KEY = new Uint8Array(32).fill(0x42);

function session(): TransportSession {
  const cipher = () => {
    const c = new CipherState(backend.cipher("ChaChaPoly"));
    c.initializeKey(KEY.slice());
    return c;
  };
  return new TransportSession({ send: cipher(), receive: cipher() }, {
    replayWindow: 32,
    rekeyInterval: 64,
  });
}

interface Sealed {
  readonly frame: Uint8Array;
  readonly payloads: readonly Uint8Array[];
}

/**
 * Frames sealed by senders with the key every receiver starts with: sealing is deterministic,
 * so they are made once and each case only builds a fresh receiver. Some senders first seal
 * up to three rekey intervals of frames, so receivers must derive later epochs' keys.
 */
function sealedScenarios(): Sealed[][] {
  const rng = new Prng(0x5ea1);
  return Array.from({ length: 96 }, (_, i) => {
    const sender = session();
    const skip = i % 3 === 0 ? rng.int(200) : 0;
    for (let n = 0; n < skip; n++) sender.seal(new Uint8Array(0));
    return Array.from({ length: 1 + rng.int(4) }, () => {
      const payloads = Array.from({ length: 1 + rng.int(3) }, () => rng.bytes(rng.size(40)));
      const kind = rng.int(6);
      if (kind === 0) return { frame: sender.sealReady(), payloads: [] };
      if (kind === 1) return { frame: sender.sealBatch(payloads), payloads };
      return { frame: sender.seal(payloads[0]!), payloads: [payloads[0]!] };
    });
  });
}

Deno.test("fuzz: TransportSession.open delivers only genuine frames, else ends or drops", () => {
  const scenarios = sealedScenarios();
  fuzz("transport frame", { seed: 0x0e1a_0004 }, (rng, record) => {
    const sealed = rng.pick(scenarios);
    const receiver = session();
    // Open some genuine frames first, so that replays and the window come into play.
    for (const { frame } of sealed.slice(0, rng.int(sealed.length))) receiver.open(frame);
    const corpus = sealed.map((s) => s.frame);
    const input = rng.oneIn(10)
      ? rng.bytes(rng.size(80))
      : mutate(rng, rng.pick(corpus), { corpus, lengthFields: [{ offset: 1, size: 4 }] });
    record(input);
    const genuine = sealed.find((s) => equal(s.frame, input));
    let result;
    try {
      result = receiver.open(input);
    } catch (error) {
      expectErrorType(error, [SessionClosedError]);
      assert.equal(receiver.ended, true, "a failed open must end the session");
      return;
    }
    if (result.kind === "dropped") return;
    assert.ok(genuine, `a forged frame was accepted as ${result.kind}`);
    if (result.kind === "data") assert.deepEqual(result.payload, genuine.payloads[0]);
    if (result.kind === "batch") assert.deepEqual(result.payloads, genuine.payloads);
  });
  assertHeapBounded("transport frame");
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Invocation messages and deployment transfers

const INVOKE_HEADER: InvokeHeader = {
  fn: "hello",
  method: "POST",
  url: "/hello?x=1",
  requestId: "r-1",
  headers: { "content-type": "text/plain" },
  params: { id: "7" },
  state: { a: "aGk=" },
};
const DIGEST = "ab".repeat(32);
const MANIFEST = bytes(JSON.stringify({
  runnables: { "hello": DIGEST, "ns::other": DIGEST },
  static: { "dir/file.txt": DIGEST },
  config: {
    allowedHosts: ["example.com"],
    authHeaders: { "example.com": "Bearer x" },
    redis: { serverAddress: "127.0.0.1:6379", username: "u" },
    database: { type: "postgresql", connectionString: "postgres://x" },
    queries: [{ name: "q", query: "SELECT 1", type: "select", varCount: 0 }],
  },
}));
const INVOCATION_SAMPLES: readonly Uint8Array[] = [
  encodeHello(["hello", "ns::fn"], {
    digests: { hello: DIGEST },
    cached: [DIGEST],
    delivery: true,
  }),
  ...encodeWithBody(INVOKE, 1, INVOKE_HEADER, bytes("my friend")),
  ...encodeWithBody(RESULT, 1, { ok: true, headers: { "x-a": "b" } }, bytes("hello")),
  ...encodeWithBody(RESULT, 2, { ok: false, code: 500, message: "boom" }, new Uint8Array(0)),
  encodeBody(1, bytes("more"), true),
  encodeCancel(9),
  ...encodeWithBody(BLOB, 3, { sha256: DIGEST, size: 5 }, bytes("wasm!")),
  ...encodeWithBody(DEPLOY, 4, { size: MANIFEST.length }, MANIFEST),
  encodeReady(4, { functions: { hello: DIGEST } }),
  encodeReady(5, { error: "no room" }),
  encodeWindow(1, 65536),
  encodePing(PING, 7),
  encodePing(PONG, 7),
];
const INVOCATION_FIELDS = [
  { offset: 2, size: 4 },
  { offset: 6, size: 2 },
  { offset: 1, size: 1 },
  { offset: 0, size: 1 },
] as const;

Deno.test("fuzz: decodeInvocationMessage returns a message or throws InvocationProtocolError", () => {
  fuzz("invocation message", { seed: 0x0e1a_0005 }, (rng, record) => {
    const input = rng.oneIn(10) ? rng.bytes(rng.size(200)) : mutate(
      rng,
      rng.pick(INVOCATION_SAMPLES),
      { corpus: INVOCATION_SAMPLES, lengthFields: INVOCATION_FIELDS },
    );
    record(input);
    try {
      const message = decodeInvocationMessage(input);
      assert.equal(message.type, input[0]);
    } catch (error) {
      expectErrorType(error, [InvocationProtocolError]);
    }
  });
  assertHeapBounded("invocation message");
});

Deno.test("fuzz: deployment transfers reassemble or throw InvocationProtocolError, bounded", () => {
  const blob = encodeWithBody(BLOB, 3, { sha256: DIGEST, size: 300 }, new Uint8Array(300));
  const deploy = encodeWithBody(DEPLOY, 4, { size: MANIFEST.length }, MANIFEST);
  const chunked = [
    ...encodeWithBody(DEPLOY, 6, { size: MANIFEST.length }, new Uint8Array(0)).slice(0, 1),
    encodeBody(6, MANIFEST.subarray(0, 100), false),
    encodeBody(6, MANIFEST.subarray(100), true),
  ];
  chunked[0]![1] = 0; // not the end: BODY messages follow
  const streams = [blob, deploy, chunked, [...blob, ...deploy]];
  const corpus = streams.flat();
  fuzz("deployment transfer", { seed: 0x0e1a_0006, cases: fuzzCases(50_000) }, (rng, record) => {
    const stream = rng.pick(streams).map((m) =>
      rng.oneIn(3) ? mutate(rng, m, { corpus, lengthFields: INVOCATION_FIELDS }) : m
    );
    record(stream.map((m) => m.toHex()));
    const transfers = new Transfers();
    try {
      for (const bytes of stream) {
        const message = decodeInvocationMessage(bytes);
        if (message.type === BLOB || message.type === DEPLOY) transfers.start(message);
        else if (message.type === BODY && transfers.has(message.id)) {
          transfers.add(message.id, message.chunk, message.end);
        }
      }
    } catch (error) {
      expectErrorType(error, [InvocationProtocolError]);
    }
  });
  assert.ok(MAX_PENDING_BYTES <= 256 * 1024 * 1024);
  assertHeapBounded("deployment transfer");
});

// ---------------------------------------------------------------------------------------------
// Directive YAML

const YAML_TOKENS = [
  ": ",
  "- ",
  "&a ",
  "*a",
  "*nope",
  "<<: *a",
  "!!binary ",
  "!!str ",
  "!custom ",
  "{",
  "}",
  "[",
  "]",
  "? ",
  "|",
  ">-",
  "---",
  "...",
  "%YAML 1.2",
  "'",
  '"',
  "\\u0000",
  "\t",
  "#",
  "~",
  "null",
  "true",
  "1e999",
  "0x7fffffff",
  "-1",
  "99999999999999999999",
  "fn: ",
  "group:",
  "steps:",
  "onErr:",
  "handlers:",
  "resource: /a/:b",
  "method: GET",
  "type: request",
  "type: stream",
  "schedules:",
  "every:",
  "__proto__: x",
  "constructor: x",
  "\u202e",
  "\ud800",
];

async function directiveSamples(): Promise<string[]> {
  const dir = joinPath(ROOT, "tests/directives");
  const samples = [await Deno.readTextFile(joinPath(ROOT, "Directive.yaml"))];
  for (const sub of ["valid", "invalid"]) {
    for await (const entry of Deno.readDir(joinPath(dir, sub))) {
      if (entry.name.endsWith(".yaml")) {
        samples.push(await Deno.readTextFile(joinPath(dir, sub, entry.name)));
      }
    }
  }
  return samples.sort();
}

const DIRECTIVE_HEADER = "identifier: com.example.fuzz\nappVersion: v0.1.0\natmoVersion: v0.4.0\n";

function excerpt(rng: Prng, samples: readonly string[]): string {
  const lines = rng.pick(samples).split("\n");
  const at = rng.int(lines.length);
  return DIRECTIVE_HEADER + lines.slice(at, at + 1 + rng.int(12)).join("\n");
}

Deno.test("fuzz: parseDirective returns a Directive or throws DirectiveError", async () => {
  const samples = await directiveSamples();
  let accepted = 0;
  const ran = fuzz("Directive YAML", { seed: 0x0e1a_0007 }, (rng, record) => {
    // The yaml parser costs about 1 µs per byte here, so 1 case in 20 mutates a whole sample and
    // most mutate a small Directive: the header lines and a window of up to 12 lines of a
    // sample (every feature shows up in some window).
    const roll = rng.int(20);
    const text = roll === 0
      ? Array.from({ length: rng.size(40) }, () => rng.pick(YAML_TOKENS)).join(
        rng.pick(["", "\n", " ", "\n  "]),
      )
      : mutateText(rng, roll === 1 ? rng.pick(samples) : excerpt(rng, samples), YAML_TOKENS);
    record(text);
    try {
      const directive = parseDirective(text, {
        file: "Directive.yaml",
        runnables: rng.oneIn(2) ? undefined : ["helloworld-rs", "hello"],
      });
      assert.ok(Object.isFrozen(directive));
      accepted++;
    } catch (error) {
      expectErrorType(error, [DirectiveError]);
    }
  });
  assert.ok(accepted > 0 || ran < 100, "no mutated Directive was ever accepted");
  assertHeapBounded("Directive YAML");
});

Deno.test({
  // Found by the Directive fuzzer: routeShape's encodeURIComponent threw URIError out of
  // parseDirective before parseResource refused such a segment.
  name: "parseDirective refuses a resource with an unpaired surrogate with a DirectiveError",
  fn: () => {
    const text = `identifier: com.example.app
appVersion: v0.1.0
atmoVersion: v0.4.0
handlers:
  - type: request
    resource: /us\ud800
    method: GET
    steps:
      - fn: render
`;
    assert.throws(
      () => parseDirective(text, { file: "Directive.yaml" }),
      (error: unknown) =>
        error instanceof DirectiveError && /Directive\.yaml:6:\d+: .*resource/.test(error.message),
    );
  },
});

// ---------------------------------------------------------------------------------------------
// HTTP requests at the proxy handler

const PROXY_DIRECTIVE = parseDirective(
  `identifier: com.example.fuzz
appVersion: v0.1.0
atmoVersion: v0.4.0
handlers:
  - type: request
    resource: /hello
    method: POST
    steps:
      - fn: hello
  - type: request
    resource: /users/:id
    method: GET
    steps:
      - fn: hello
  - type: request
    resource: /missing
    method: POST
    steps:
      - fn: nobody-has-it
`,
  { file: "Directive.yaml" },
);

async function channelPair(): Promise<[SecureChannel, SecureChannel, MessageTransport[]]> {
  const sat = Identity.generate();
  const proxy = Identity.generate();
  const [a, b] = memoryTransportPair();
  const [s, p] = await Promise.all([
    SecureChannel.initiate(a, {
      identity: sat,
      trust: await TrustPolicy.open({ allow: [proxy.identifier] }),
    }),
    SecureChannel.respond(b, {
      identity: proxy,
      trust: await TrustPolicy.open({ allow: [sat.identifier] }),
    }),
  ]);
  return [s, p, [a, b]];
}

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO", "M-SEARCH"];
const PATHS = [
  "/hello",
  "/users/1",
  "/users/%2e%2e",
  "/missing",
  "/",
  "//hello",
  "/hello/",
  "/HELLO",
  "/users/",
  "/users/a/b",
  "/%00",
  "/%",
  "/%zz",
  "/hello?x=1&y",
  "/meta/sync",
  "/a".repeat(500),
];
const STATUS_ALLOWED = new Set([200, 400, 404, 405, 413, 431, 500, 502, 503, 504]);

Deno.test("fuzz: the proxy handler answers every request with a clear status, never throws", async () => {
  const [satChannel, proxyChannel] = await channelPair();
  const served = serveInvocations(
    satChannel,
    ["hello"],
    async (_h, body) => ({ ok: true, output: join(bytes("hello, "), await bodyBytes(body)) }),
  );
  const sats = new SatRegistry();
  const sat = await SatConnection.accept(proxyChannel);
  sats.add(sat);
  const handler = createProxyHandler({
    resolve: routeResolver(PROXY_DIRECTIVE),
    sats,
    log: SILENT_LOGGER,
    maxBodyBytes: 4096,
    timeoutMs: 10_000,
  });
  const statuses = new Map<number, number>();
  let ran = 0;
  try {
    ran = await fuzzAsync("proxy HTTP request", { seed: 0x0e1a_0008 }, async (rng, record) => {
      const method = rng.oneIn(8) ? mutateText(rng, rng.pick(METHODS), ["", "-"]) : rng.pick(
        METHODS,
      );
      const path = rng.oneIn(3) ? mutateText(rng, rng.pick(PATHS), PATHS) : rng.pick(PATHS);
      const headers: [string, string][] = [];
      for (let i = rng.int(4); i > 0; i--) {
        headers.push([
          rng.pick(["x-atmo-state", "content-type", "x-request-id", "content-length", "x-a"]),
          rng.oneIn(2) ? rng.pick(["{}", '{"a":1}', "[", "null", "%"]) : rng.bytes(8).toHex(),
        ]);
      }
      const body = method === "GET" || method === "HEAD"
        ? undefined
        : rng.bytes(rng.size(6000)) as Uint8Array<ArrayBuffer>;
      record({ method, path, headers, body: body?.length });
      let request: Request;
      try {
        request = new Request(`http://proxy.test${path.startsWith("/") ? "" : "/"}${path}`, {
          method,
          headers,
          body,
        });
      } catch {
        return; // Not a request an HTTP server would hand the handler.
      }
      const response = await handler(request);
      await response.body?.cancel();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      assert.ok(
        STATUS_ALLOWED.has(response.status),
        `unexpected status ${response.status} for ${method} ${path}`,
      );
    });
  } finally {
    await sat.close();
    await served;
  }
  assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(404) ?? 0) > 0 || ran < 100);
  assertHeapBounded("proxy HTTP request");
});

// ---------------------------------------------------------------------------------------------
// Stateful parsers through real objects

Deno.test("fuzz: a secure channel responder given mutated handshakes fails closed", async () => {
  // Record a genuine initiator's messages 1 and 3 against a responder with fixed keys.
  const satIdentity = Identity.generate();
  const proxyIdentity = Identity.generate();
  const proxyTrust = await TrustPolicy.open({ allow: [satIdentity.identifier] });
  const satTrust = await TrustPolicy.open({ allow: [proxyIdentity.identifier] });
  const cases = fuzzCases(2_000);
  let refused = 0;
  const ran = await fuzzAsync(
    "secure channel responder",
    { seed: 0x0e1a_0009, cases },
    async (rng, record) => {
      const [a, b] = memoryTransportPair();
      // A man in the middle on the initiator's side rewrites one of its messages.
      const target = rng.int(3);
      let index = 0;
      const tampering: MessageTransport = {
        send: (m) => {
          const out = index++ === target ? mutate(rng, m) : m;
          record({ target, message: out.toHex() });
          return a.send(out);
        },
        receive: () => a.receive(),
        close: () => a.close(),
      };
      const [initiated, responded] = await Promise.allSettled([
        SecureChannel.initiate(tampering, {
          identity: satIdentity,
          trust: satTrust,
          handshakeTimeoutMs: 60_000,
        }),
        SecureChannel.respond(b, {
          identity: proxyIdentity,
          trust: proxyTrust,
          handshakeTimeoutMs: 60_000,
        }),
      ]);
      // The handshake may only end as a refusal; a success needs untouched messages.
      for (const result of [initiated, responded]) {
        if (result.status === "rejected") {
          expectErrorType(result.reason, [HandshakeError, TrustError]);
          refused++;
        } else {
          await result.value.close();
        }
      }
      if (responded.status === "fulfilled") {
        assert.equal(responded.value.peer, satIdentity.identifier);
      }
      a.close();
    },
  );
  assert.ok(refused > 0 || ran < 10);
  assertHeapBounded("secure channel responder");
});

Deno.test("fuzz: a channel receiving mutated frames delivers nothing forged; others go on", async () => {
  const [bystanderSat, bystanderProxy] = await channelPair();
  const satIdentity = Identity.generate();
  const proxyIdentity = Identity.generate();
  const satTrust = await TrustPolicy.open({ allow: [proxyIdentity.identifier] });
  const proxyTrust = await TrustPolicy.open({ allow: [satIdentity.identifier] });
  const cases = fuzzCases(1_000);
  let ended = 0;
  const ran = await fuzzAsync(
    "secure channel receive",
    { seed: 0x0e1a_000a, cases },
    async (rng, record) => {
      const [a, b] = memoryTransportPair();
      const genuine = Array.from({ length: 1 + rng.int(4) }, () => rng.bytes(rng.size(100)));
      // Frames 0 and 1 are handshake messages 1 and 3; one transport frame after them is mutated.
      const target = 2 + rng.int(genuine.length);
      let index = 0;
      const tampering: MessageTransport = {
        send: (m) => {
          if (index++ !== target) return a.send(m);
          const forged = mutate(rng, m);
          record({ target, genuine: genuine.map((g) => g.toHex()), forged: forged.toHex() });
          return a.send(forged);
        },
        receive: () => a.receive(),
        close: () => a.close(),
      };
      const [s, p] = await Promise.all([
        SecureChannel.initiate(tampering, { identity: satIdentity, trust: satTrust }),
        SecureChannel.respond(b, { identity: proxyIdentity, trust: proxyTrust }),
      ]);
      for (const message of genuine) await s.send(message);
      await s.close();
      const delivered: Uint8Array[] = [];
      try {
        for (let m = await p.receive(); m !== undefined; m = await p.receive()) delivered.push(m);
      } catch (error) {
        expectErrorType(error, [SessionClosedError]);
        assert.equal(p.closed, true, "a failed receive must end the channel");
        ended++;
      }
      // What arrived is the genuine messages, in order, with at most the tampered one missing.
      let g = 0;
      for (const message of delivered) {
        while (g < genuine.length && !equal(genuine[g]!, message)) g++;
        assert.ok(g < genuine.length, `a forged message was delivered: ${message.toHex()}`);
        g++;
      }
      assert.ok(delivered.length >= genuine.length - 1 || p.closed);
      await p.close();
    },
  );
  assert.ok(ended > 0 || ran < 10);
  await bystanderSat.send(bytes("still here"));
  assert.equal(new TextDecoder().decode(await bystanderProxy.receive()), "still here");
  await bystanderSat.close();
  assert.equal(await bystanderProxy.receive(), undefined);
  assertHeapBounded("secure channel receive");
});

/** Channels between a fake sat and a fake proxy whose identities trust each other. */
async function trustedChannels() {
  const sat = Identity.generate();
  const proxy = Identity.generate();
  const satTrust = await TrustPolicy.open({ allow: [proxy.identifier] });
  const proxyTrust = await TrustPolicy.open({ allow: [sat.identifier] });
  return async (): Promise<[SecureChannel, SecureChannel]> => {
    const [a, b] = memoryTransportPair();
    return await Promise.all([
      SecureChannel.initiate(a, { identity: sat, trust: satTrust }),
      SecureChannel.respond(b, { identity: proxy, trust: proxyTrust }),
    ]);
  };
}

/** Messages a proxy sends a sat, for invocation `id`. */
function proxyMessages(id: number): Uint8Array[] {
  return [
    ...encodeWithBody(INVOKE, id, INVOKE_HEADER, bytes("my friend")),
    ...encodeWithBody(INVOKE, id + 1, INVOKE_HEADER, new Uint8Array(0)).map((m) => {
      m[1] = 0; // not the end: BODY follows
      return m;
    }),
    encodeBody(id + 1, bytes("more"), true),
    encodeCancel(id),
    encodeWindow(id, 4096),
    encodePing(PING, 3),
    ...encodeWithBody(BLOB, 20, { sha256: DIGEST, size: 5 }, bytes("wasm!")),
    ...encodeWithBody(DEPLOY, 21, { size: MANIFEST.length }, MANIFEST),
  ];
}

/** Messages a sat sends the proxy in answer to invocation `id`. */
function satMessages(id: number): Uint8Array[] {
  const started = encodeWithBody(RESULT, id, { ok: true }, bytes("hello"));
  started[0]![1] = 0;
  return [
    ...encodeWithBody(RESULT, id, { ok: true, headers: { "x-a": "b" } }, bytes("hello")),
    ...encodeWithBody(RESULT, id, { ok: false, code: 500, message: "boom" }, new Uint8Array(0)),
    ...started,
    encodeBody(id, bytes(" more"), true),
    encodeWindow(id, 4096),
    encodePing(PONG, 1),
    encodeReady(0, { functions: { hello: DIGEST } }),
  ];
}

Deno.test("fuzz: serveInvocations (the sat) ends only its channel on mutated proxy messages", async () => {
  const connect = await trustedChannels();
  const cases = fuzzCases(1_000);
  const endings = new Map<string, number>();
  const ran = await fuzzAsync(
    "sat invocation loop",
    { seed: 0x0e1a_000b, cases },
    async (rng, record) => {
      const [sat, proxy] = await connect();
      const served = serveInvocations(sat, ["hello"], async (_h, body) => ({
        ok: true,
        output: join(bytes("hello, "), await bodyBytes(body)),
      }), { maxBodyBytes: 1 << 20 });
      const samples = proxyMessages(1 + rng.int(4));
      const stream = Array.from({ length: 1 + rng.int(5) }, () => {
        const sample = rng.pick(samples);
        return rng.oneIn(2) ? sample : mutate(rng, sample, {
          corpus: samples,
          lengthFields: INVOCATION_FIELDS,
          maxLen: 60_000,
        });
      });
      record(stream.map((m) => m.toHex()));
      for (const message of stream) await proxy.send(message).catch(() => {});
      await proxy.close();
      const failure = await served; // never rejects: it reports how the loop ended
      if (failure !== undefined) {
        expectErrorType(failure, [InvocationProtocolError, SessionClosedError, BodyError]);
      }
      const kind = failure?.name ?? "clean";
      endings.set(kind, (endings.get(kind) ?? 0) + 1);
      assert.equal(sat.closed, true, "the sat's channel must be closed when the loop ends");
    },
  );
  assert.ok((endings.get("InvocationProtocolError") ?? 0) > 0 || ran < 50, `${[...endings]}`);
  assertHeapBounded("sat invocation loop");
});

Deno.test("fuzz: SatConnection (the proxy) settles every invocation on mutated sat messages", async () => {
  const connect = await trustedChannels();
  const cases = fuzzCases(1_000);
  const outcomes = new Map<string, number>();
  const ran = await fuzzAsync(
    "proxy invocation loop",
    { seed: 0x0e1a_000c, cases },
    async (rng, record) => {
      const [sat, proxy] = await connect();
      const accepting = SatConnection.accept(proxy, { helloTimeoutMs: 60_000 });
      const hello = encodeHello(["hello"], { delivery: false });
      const sentHello = rng.oneIn(4) ? mutate(rng, hello, { corpus: INVOCATION_SAMPLES }) : hello;
      await sat.send(sentHello);
      let connection: SatConnection;
      try {
        connection = await accepting;
      } catch (error) {
        record(sentHello);
        expectErrorType(error, [InvocationProtocolError, SessionClosedError]);
        await sat.close();
        return;
      }
      const invoking = connection.invoke(INVOKE_HEADER, bytes("my friend")).then(
        (outcome) => outcome.ok ? "ok" : "error-result",
        (error) => {
          expectErrorType(error, [SatGoneError, OutputTooLargeError, InvocationProtocolError]);
          return (error as Error).name;
        },
      );
      // The fake sat reads the INVOKE to learn its id, then answers with mutated messages.
      const invoke = decodeInvocationMessage((await sat.receive())!);
      const id = "id" in invoke ? invoke.id : 1;
      const samples = satMessages(id);
      const stream = Array.from({ length: 1 + rng.int(4) }, () => {
        const sample = rng.pick(samples);
        return rng.oneIn(2) ? sample : mutate(rng, sample, {
          corpus: samples,
          lengthFields: INVOCATION_FIELDS,
          maxLen: 60_000,
        });
      });
      record({ hello: sentHello.toHex(), stream: stream.map((m) => m.toHex()) });
      for (const message of stream) await sat.send(message).catch(() => {});
      await sat.close();
      const outcome = await invoking;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      const ended = await connection.closed;
      if (ended !== undefined) {
        expectErrorType(ended, [InvocationProtocolError, SessionClosedError, SatGoneError]);
      }
      await connection.close();
    },
  );
  assert.ok(outcomes.size > 1 || ran < 50, `outcomes: ${[...outcomes]}`);
  assertHeapBounded("proxy invocation loop");
});
