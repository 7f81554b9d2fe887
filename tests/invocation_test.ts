import assert from "node:assert/strict";
import {
  bodyBytes,
  Cancellation,
  decodeInvocationMessage,
  type InvocationBody,
  InvocationProtocolError,
  type InvokeHeader,
  MAX_CHUNK_LEN,
  type RunOutcome,
  SatConnection,
  SatGoneError,
  serveInvocations,
} from "../src/invocation/mod.ts";
import {
  encodeBody,
  encodeCancel,
  encodeHello,
  encodeWithBody,
  INVOKE,
  MAX_JSON_HEADER_LEN,
  RESULT,
} from "../src/invocation/invocation_codec.ts";
import { channelPair } from "./_channels.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

function header(fn: string, extra: Partial<InvokeHeader> = {}): InvokeHeader {
  return { fn, method: "POST", url: "/x", requestId: "r1", headers: {}, params: {}, ...extra };
}

async function setUp(
  run: (h: InvokeHeader, body: Uint8Array, signal: AbortSignal) => Promise<RunOutcome>,
) {
  // The runners here read whole bodies; a streamed one is read first.
  // Their AbortSignal is the one a Cancellation makes on demand.
  const runner = async (h: InvokeHeader, body: InvocationBody, cancellation: Cancellation) =>
    run(h, await bodyBytes(body), cancellation.signal);
  const [satChannel, proxyChannel] = await channelPair();
  const served = serveInvocations(satChannel, ["echo", "hello"], runner);
  const sat = await SatConnection.accept(proxyChannel);
  return { sat, served, satChannel };
}

Deno.test("the codec round-trips every message type and refuses malformed ones", () => {
  const h = header("hello", { headers: { "content-type": "text/plain" }, params: { a: "1" } });
  assert.deepEqual(decodeInvocationMessage(encodeHello(["a", "b"])), {
    type: 1,
    functions: ["a", "b"],
  });
  const invoke = decodeInvocationMessage(encodeWithBody(INVOKE, 7, h, bytes("body"))[0]!);
  assert.deepEqual(invoke, { type: 2, id: 7, end: true, header: h, chunk: bytes("body") });
  assert.deepEqual(decodeInvocationMessage(encodeBody(7, bytes("more"), false)), {
    type: 3,
    id: 7,
    end: false,
    chunk: bytes("more"),
  });
  const failed = encodeWithBody(
    RESULT,
    9,
    { ok: false, code: 404, message: "nope" },
    new Uint8Array(0),
  )[0]!;
  assert.deepEqual(decodeInvocationMessage(failed), {
    type: 4,
    id: 9,
    end: true,
    header: { ok: false, code: 404, message: "nope" },
    chunk: new Uint8Array(0),
  });
  assert.deepEqual(decodeInvocationMessage(encodeCancel(3)), { type: 5, id: 3 });

  const valid = encodeWithBody(INVOKE, 7, h, bytes("body"))[0]!;
  for (let cut = 0; cut < valid.length - 4; cut++) {
    // Cutting into the header or its JSON is always caught; cutting the body is just a shorter body.
    if (cut < 8 + new DataView(valid.buffer).getUint16(6)) {
      assert.throws(() => decodeInvocationMessage(valid.subarray(0, cut)), InvocationProtocolError);
    }
  }
  const badType = valid.slice();
  badType[0] = 99;
  assert.throws(() => decodeInvocationMessage(badType), InvocationProtocolError);
  const badFlags = valid.slice();
  badFlags[1] = 2;
  assert.throws(() => decodeInvocationMessage(badFlags), InvocationProtocolError);
  const badJson = encodeWithBody(INVOKE, 7, { ...h, fn: 5 as unknown as string }, bytes(""))[0]!;
  assert.throws(() => decodeInvocationMessage(badJson), InvocationProtocolError);
});

Deno.test("an INVOKE whose headers, params or state are not records of strings is refused", () => {
  const wrong: Record<string, unknown>[] = [
    { headers: { host: "a", "content-length": 9 } },
    { headers: ["host", "a"] },
    { headers: null },
    { params: { id: { nested: "1" } } },
    { params: "id=1" },
    { state: { greeting: true } },
  ];
  for (const extra of wrong) {
    const message = encodeWithBody(INVOKE, 7, { ...header("hello"), ...extra }, bytes(""))[0]!;
    assert.throws(
      () => decodeInvocationMessage(message),
      { name: "InvocationProtocolError", message: "INVOKE header has the wrong shape" },
      JSON.stringify(extra),
    );
  }
  const right = header("hello", { headers: { ["__proto__"]: "x", a: "" }, state: { s: "aGk=" } });
  const message = encodeWithBody(INVOKE, 7, right, bytes(""))[0]!;
  const decoded = decodeInvocationMessage(message);
  assert.ok(decoded.type === INVOKE);
  assert.deepEqual(Object.entries(decoded.header.headers), [["__proto__", "x"], ["a", ""]]);
});

Deno.test("a body larger than one message is split into INVOKE then BODY chunks, END last", () => {
  const body = Uint8Array.from({ length: MAX_CHUNK_LEN * 2 + 10 }, (_, i) => (i * 31) & 0xff);
  const messages = encodeWithBody(INVOKE, 3, header("echo"), body).map(decodeInvocationMessage);
  assert.deepEqual(messages.map((m) => m.type), [2, 3, 3]);
  assert.deepEqual(messages.map((m) => (m as { end: boolean }).end), [false, false, true]);
  const joined = messages.flatMap((m) => [...(m as { chunk: Uint8Array }).chunk]);
  assert.deepEqual(new Uint8Array(joined), body);
});

Deno.test("many concurrent invocations share one channel and each gets its own result", async () => {
  const { sat, served } = await setUp(async (h, body) => {
    await new Promise((r) => setTimeout(r, Math.random() * 5));
    return { ok: true, output: bytes(`${h.fn}:${text(body)}`) };
  });
  assert.deepEqual([...sat.functions.keys()], ["echo", "hello"]);
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => sat.invoke(header("echo"), bytes(`n${i}`))),
  );
  results.forEach((r, i) => assert.deepEqual(r, { ok: true, output: bytes(`echo:n${i}`) }));
  assert.equal(sat.inFlight, 0);
  await sat.close();
  assert.equal(await served, undefined);
});

Deno.test("bodies and outputs larger than one channel message travel in chunks", async () => {
  const { sat, served } = await setUp((_, body) => {
    const output = new Uint8Array(body.length * 2);
    output.set(body);
    output.set(body, body.length);
    return Promise.resolve({ ok: true, output });
  });
  for (const size of [0, MAX_CHUNK_LEN - 200, MAX_CHUNK_LEN * 3 + 17, 1_000_000]) {
    const body = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
    const big = new Uint8Array(size);
    for (let o = 0; o < size; o += body.length) big.set(body.subarray(0, size - o), o);
    const result = await sat.invoke(header("echo"), big);
    assert.equal(result.ok, true);
    const output = (result as { output: Uint8Array }).output;
    assert.equal(output.length, size * 2);
    assert.deepEqual(output.subarray(0, size), big);
    assert.deepEqual(output.subarray(size), big);
  }
  await sat.close();
  await served;
});

Deno.test("a function error comes back with its code and message", async () => {
  const { sat, served } = await setUp(() =>
    Promise.resolve({ ok: false, code: 418, message: "short and stout" })
  );
  assert.deepEqual(await sat.invoke(header("hello"), bytes("")), {
    ok: false,
    code: 418,
    message: "short and stout",
  });
  await sat.close();
  await served;
});

Deno.test("aborting an invocation cancels it on the sat", async () => {
  let seenAbort: (reason: unknown) => void;
  const aborted = new Promise((resolve) => (seenAbort = resolve));
  const { sat, served } = await setUp((_, __, signal) =>
    new Promise((_, reject) => {
      signal.addEventListener("abort", () => {
        seenAbort(signal.reason);
        reject(signal.reason);
      });
    })
  );
  const controller = new AbortController();
  const call = sat.invoke(header("hello"), bytes(""), { signal: controller.signal });
  await new Promise((r) => setTimeout(r, 10));
  controller.abort(new Error("client went away"));
  await assert.rejects(call, /client went away/);
  assert.match(String(await aborted), /cancelled by the proxy/);
  assert.equal(sat.inFlight, 0);
  await sat.close();
  await served;
});

Deno.test("INVOKE and RESULT headers round-trip with non-ASCII text, beside and after others", () => {
  const messages = [
    encodeWithBody(INVOKE, 1, header("hello", { url: "/caf\u00e9?q=\u{1F600}" }), bytes("a")),
    encodeWithBody(RESULT, 2, { ok: false, code: 500, message: "\u00fcber \u{1F680}" }, bytes("")),
    encodeWithBody(INVOKE, 3, header("ascii"), bytes("after")),
  ].map((parts) => parts[0]!);
  assert.deepEqual(decodeInvocationMessage(messages[0]!), {
    type: INVOKE,
    id: 1,
    end: true,
    header: header("hello", { url: "/caf\u00e9?q=\u{1F600}" }),
    chunk: bytes("a"),
  });
  assert.deepEqual(decodeInvocationMessage(messages[1]!), {
    type: RESULT,
    id: 2,
    end: true,
    header: { ok: false, code: 500, message: "\u00fcber \u{1F680}" },
    chunk: bytes(""),
  });
  assert.deepEqual(decodeInvocationMessage(messages[2]!), {
    type: INVOKE,
    id: 3,
    end: true,
    header: header("ascii"),
    chunk: bytes("after"),
  });
});

Deno.test("a JSON header over MAX_JSON_HEADER_LEN bytes is refused, in ASCII and in UTF-8", () => {
  // `exact` encodes to the limit; one more character, or a 2-byte one in place of one, is over.
  const fits = "x".repeat(MAX_JSON_HEADER_LEN - 100);
  const json = JSON.stringify(header("hello", { url: fits })).length;
  const url = "x".repeat(MAX_JSON_HEADER_LEN - 100 - (json - MAX_JSON_HEADER_LEN));
  const exact = header("hello", { url });
  assert.equal(JSON.stringify(exact).length, MAX_JSON_HEADER_LEN);
  assert.equal(
    decodeInvocationMessage(encodeWithBody(INVOKE, 1, exact, bytes(""))[0]!).type,
    INVOKE,
  );
  assert.throws(
    () => encodeWithBody(INVOKE, 1, header("hello", { url: url + "x" }), bytes("")),
    /exceeds 16384 bytes/,
  );
  assert.throws(
    () => encodeWithBody(INVOKE, 1, header("hello", { url: "\u00e9" + url.slice(1) }), bytes("")),
    /exceeds 16384 bytes/,
  );
});

Deno.test('a plain successful RESULT is {"ok":true} on the wire, and decodes however it is spaced', () => {
  const json = bytes('{"ok":true}');
  const output = crypto.getRandomValues(new Uint8Array(MAX_CHUNK_LEN + 10));
  const [first, rest, ...none] = encodeWithBody(RESULT, 0x01020304, { ok: true }, output);
  assert.equal(none.length, 0);
  assert.deepEqual(
    first,
    new Uint8Array([
      RESULT,
      0,
      1,
      2,
      3,
      4,
      0,
      json.length,
      ...json,
      ...output.subarray(0, MAX_CHUNK_LEN - json.length),
    ]),
  );
  assert.deepEqual(decodeInvocationMessage(rest!), {
    type: 3,
    id: 0x01020304,
    end: true,
    chunk: output.subarray(MAX_CHUNK_LEN - json.length),
  });
  assert.deepEqual(decodeInvocationMessage(first!), {
    type: RESULT,
    id: 0x01020304,
    end: false,
    header: { ok: true },
    chunk: output.subarray(0, MAX_CHUNK_LEN - json.length),
  });
  // The same header written otherwise goes through the parser, to the same result.
  const spaced = bytes('{ "ok": true }');
  const message = new Uint8Array([RESULT, 1, 0, 0, 0, 9, 0, spaced.length, ...spaced, 42]);
  assert.deepEqual(decodeInvocationMessage(message), {
    type: RESULT,
    id: 9,
    end: true,
    header: { ok: true },
    chunk: Uint8Array.of(42),
  });
  // Headers set by the function keep the JSON path.
  const withHeaders = encodeWithBody(RESULT, 5, { ok: true, headers: { a: "b" } }, bytes("x"));
  assert.deepEqual(decodeInvocationMessage(withHeaders[0]!), {
    type: RESULT,
    id: 5,
    end: true,
    header: { ok: true, headers: { a: "b" } },
    chunk: bytes("x"),
  });
});

Deno.test("a Cancellation's signal, made before or after it is cancelled, aborts with its reason", () => {
  const early = new Cancellation();
  const signal = early.signal;
  assert.equal(early.signal, signal);
  assert.equal(signal.aborted, false);
  const reason = new Error("the proxy cancelled it");
  early.cancel(reason);
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason, reason);

  const late = new Cancellation();
  late.cancel(reason);
  assert.equal(late.signal.aborted, true);
  assert.equal(late.signal.reason, reason);
});

Deno.test("a Cancellation cancels the invocation waiting on it, and refuses later ones", async () => {
  let seenAbort: (reason: unknown) => void;
  const aborted = new Promise((resolve) => (seenAbort = resolve));
  let runs = 0;
  const { sat, served } = await setUp((_, __, signal) => {
    runs++;
    return new Promise((_, reject) => {
      signal.addEventListener("abort", () => {
        seenAbort(signal.reason);
        reject(signal.reason);
      });
    });
  });
  const cancellation = new Cancellation();
  const call = sat.invoke(header("hello"), bytes(""), { cancellation });
  await new Promise((r) => setTimeout(r, 10));
  cancellation.cancel(new Error("deadline passed"));
  cancellation.cancel(new Error("a second reason is ignored"));
  await assert.rejects(call, /deadline passed/);
  assert.match(String(await aborted), /cancelled by the proxy/);
  assert.equal(sat.inFlight, 0);
  // Already cancelled: refused before anything is sent.
  await assert.rejects(
    () => sat.invoke(header("hello"), bytes(""), { cancellation }),
    /deadline passed/,
  );
  assert.equal(runs, 1);
  assert.equal(sat.inFlight, 0);
  await sat.close();
  await served;
});

Deno.test("a sat that goes away fails its in-flight invocations with SatGoneError", async () => {
  const { sat, served, satChannel } = await setUp(() => new Promise(() => {}));
  const call = sat.invoke(header("hello"), bytes(""));
  await new Promise((r) => setTimeout(r, 10));
  await satChannel.close();
  await assert.rejects(call, SatGoneError);
  await assert.rejects(() => sat.invoke(header("hello"), bytes("")), SatGoneError);
  await served;
});
