import assert from "node:assert/strict";
import { Identity, SecureChannel, TrustPolicy } from "../src/channel/mod.ts";
import { SILENT_LOGGER } from "../src/cli/mod.ts";
import { parseDirective } from "../src/directive/mod.ts";
import {
  bodyBytes,
  type RunOutcome,
  SatConnection,
  serveInvocations,
} from "../src/invocation/mod.ts";
import {
  createInvoker,
  createProxyHandler,
  routeResolver,
  SatRegistry,
  Scheduler,
} from "../src/proxy/mod.ts";
import { createLogger } from "../src/cli/mod.ts";
import { memoryTransportPair } from "../src/wire/mod.ts";

const DIRECTIVE = parseDirective(
  `identifier: com.example.proxy
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
  - type: request
    resource: /chain
    method: POST
    steps:
      - fn: upper
      - fn: greet
        with:
          name: upper
    response: greet
  - type: request
    resource: /group
    method: POST
    steps:
      - fn: upper
      - group:
          - fn: seen
            as: first
          - fn: seen
            as: second
      - fn: fail
        onErr:
          code:
            404: continue
          other: return
    response: second
  - type: request
    resource: /continued
    method: POST
    steps:
      - fn: fail
        onErr:
          any: continue
    response: fail
  - type: stream
    resource: /ws
    steps:
      - fn: hello
  - type: request
    resource: /returned
    method: POST
    steps:
      - fn: fail
      - fn: upper
`,
  { file: "Directive.yaml" },
);

type Runner = (
  fn: string,
  body: string,
  params: Record<string, string>,
  state: Record<string, string>,
  method: string,
  signal?: AbortSignal,
) => Promise<RunOutcome>;

/** A proxy handler with one real sat behind a real secure channel, running `runner`. */
async function proxyWith(
  runner: Runner,
  options: { maxBodyBytes?: number; timeoutMs?: number; requestless?: string[] } = {},
  directive = DIRECTIVE,
) {
  const { requestless, ...handlerOptions } = options;
  const satIdentity = Identity.generate();
  const proxyIdentity = Identity.generate();
  const [a, b] = memoryTransportPair();
  const [satChannel, proxyChannel] = await Promise.all([
    SecureChannel.initiate(a, {
      identity: satIdentity,
      trust: await TrustPolicy.open({ allow: [proxyIdentity.identifier] }),
    }),
    SecureChannel.respond(b, {
      identity: proxyIdentity,
      trust: await TrustPolicy.open({ allow: [satIdentity.identifier] }),
    }),
  ]);
  const served = serveInvocations(
    satChannel,
    ["hello", "upper", "greet", "seen", "fail"],
    async (header, body, cancellation) =>
      runner(
        header.fn,
        new TextDecoder().decode(await bodyBytes(body)),
        { ...header.params },
        Object.fromEntries(
          Object.entries(header.state ?? {}).map((
            [k, v],
          ) => [k, new TextDecoder().decode(Uint8Array.fromBase64(v))]),
        ),
        header.method,
        cancellation.signal,
      ),
    { hello: { requestless } },
  );
  const sats = new SatRegistry();
  const sat = await SatConnection.accept(proxyChannel);
  sats.add(sat);
  const handler = createProxyHandler({
    resolve: routeResolver(directive),
    sats,
    log: SILENT_LOGGER,
    ...handlerOptions,
  });
  return {
    handler,
    sats,
    satChannel,
    close: async () => {
      await sat.close();
      await served;
    },
  };
}

const hello: Runner = (_fn, body) =>
  Promise.resolve({ ok: true, output: new TextEncoder().encode(`hello, ${body}`) });

async function call(
  handler: (r: Request) => Promise<Response>,
  init: RequestInit & { path: string },
) {
  const response = await handler(new Request(`http://proxy.test${init.path}`, init));
  return { status: response.status, headers: response.headers, text: await response.text() };
}

Deno.test("the proxy answers a routed request with the function's output", async () => {
  const proxy = await proxyWith(hello);
  try {
    const answer = await call(proxy.handler, { path: "/hello", method: "POST", body: "my friend" });
    assert.equal(answer.status, 200);
    assert.equal(answer.text, "hello, my friend");
    assert.ok(answer.headers.get("x-request-id"));
  } finally {
    await proxy.close();
  }
});

Deno.test("URL parameters reach the function", async () => {
  const proxy = await proxyWith((_fn, _body, params) =>
    Promise.resolve({ ok: true, output: new TextEncoder().encode(`user ${params.id}`) })
  );
  try {
    assert.equal(
      (await call(proxy.handler, { path: "/users/42?x=1", method: "GET" })).text,
      "user 42",
    );
  } finally {
    await proxy.close();
  }
});

Deno.test("a function whose module never reads the request gets none of it, and no 431", async () => {
  const seen: Record<string, string>[] = [];
  const proxy = await proxyWith((_fn, body, params) => {
    seen.push(params);
    return Promise.resolve({ ok: true, output: new TextEncoder().encode(`hello, ${body}`) });
  }, { requestless: ["hello"] });
  try {
    const answer = await call(proxy.handler, {
      path: "/users/42",
      method: "GET",
      headers: { "x-request-id": "trace-1", "x-big": "y".repeat(9000) },
    });
    // Its headers were never collected, so their size does not matter: none reach it.
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get("x-request-id"), "trace-1");
    assert.deepEqual(seen, [{}]);
    // The body, its input, still arrives.
    const posted = await call(proxy.handler, { path: "/hello", method: "POST", body: "you" });
    assert.equal(posted.text, "hello, you");
  } finally {
    await proxy.close();
  }
});

Deno.test("the proxy's errors are clear and in Atmo's JSON shape", async (t) => {
  const proxy = await proxyWith(
    (_fn, body) =>
      body === "fail"
        ? Promise.resolve({ ok: false, code: 418, message: "I'm a teapot" })
        : body === "odd"
        ? Promise.resolve({ ok: false, code: 1234, message: "odd code" })
        : body === "slow"
        ? new Promise((resolve) =>
          setTimeout(() => resolve({ ok: true, output: new Uint8Array() }), 300)
        )
        : hello("hello", body, {}, {}, "POST"),
    { maxBodyBytes: 100, timeoutMs: 100 },
  );
  try {
    const cases: [string, RequestInit & { path: string }, number, RegExp][] = [
      ["no route", { path: "/nope", method: "POST" }, 404, /no route for POST \/nope/],
      ["wrong method", { path: "/hello", method: "GET" }, 405, /GET is not allowed/],
      [
        "body too large",
        { path: "/hello", method: "POST", body: "x".repeat(101) },
        413,
        /exceeds the limit of 100 bytes/,
      ],
      [
        "headers too large",
        { path: "/hello", method: "POST", body: "x", headers: { "x-big": "y".repeat(9000) } },
        431,
        /request headers take \d+ bytes; at most 8192/,
      ],
      [
        "no sat has the function",
        { path: "/missing", method: "POST" },
        503,
        /no connected sat can run "nobody-has-it"/,
      ],
      ["function error", { path: "/hello", method: "POST", body: "fail" }, 418, /teapot/],
      [
        "error code outside 200-599",
        { path: "/hello", method: "POST", body: "odd" },
        500,
        /odd code/,
      ],
      [
        "timeout",
        { path: "/hello", method: "POST", body: "slow" },
        504,
        /did not answer within 100 ms/,
      ],
    ];
    for (const [name, init, status, message] of cases) {
      await t.step(name, async () => {
        const answer = await call(proxy.handler, init);
        assert.equal(answer.status, status);
        const json = JSON.parse(answer.text);
        assert.equal(json.status, status);
        assert.match(json.message, message);
        if (status === 405) assert.equal(answer.headers.get("allow"), "POST");
      });
    }
    // A body sent without a declared length is limited while it streams in.
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new Uint8Array(60));
        c.enqueue(new Uint8Array(60));
        c.close();
      },
    });
    const chunked = await call(proxy.handler, { path: "/hello", method: "POST", body: stream });
    assert.equal(chunked.status, 413);
    await new Promise((r) => setTimeout(r, 300)); // let the timed-out job finish on the sat
  } finally {
    await proxy.close();
  }
});

Deno.test("headers a function sets are merged into the response; invalid ones give 500", async () => {
  const proxy = await proxyWith((_fn, body) =>
    Promise.resolve({
      ok: true,
      output: new TextEncoder().encode("ok"),
      headers: body === "bad"
        ? { "bad header": "x" } as Record<string, string>
        : { "content-type": "text/csv", "x-request-id": "spoofed" },
    })
  );
  try {
    const good = await call(proxy.handler, { path: "/hello", method: "POST", body: "good" });
    assert.equal(good.status, 200);
    assert.equal(good.headers.get("content-type"), "text/csv");
    assert.notEqual(good.headers.get("x-request-id"), "spoofed");
    const bad = await call(proxy.handler, { path: "/hello", method: "POST", body: "bad" });
    assert.equal(bad.status, 500);
    assert.match(JSON.parse(bad.text).message, /invalid response header/);
  } finally {
    await proxy.close();
  }
});

Deno.test("steps follow Atmo's state semantics: as, with, group, onErr, response", async () => {
  const text = (s: string) =>
    Promise.resolve({ ok: true as const, output: new TextEncoder().encode(s) });
  const proxy = await proxyWith((fn, body, _params, state) => {
    if (fn === "upper") return text(body.toUpperCase());
    if (fn === "greet") {
      // `with: {name: upper}`: the alias holds upper's output and the source key is hidden.
      return text(`hello, ${state.name}${"upper" in state ? " (upper visible!)" : ""}`);
    }
    if (fn === "seen") return text(Object.keys(state).sort().join(","));
    return Promise.resolve({ ok: false, code: 404, message: "nope" });
  });
  try {
    const chain = await call(proxy.handler, { path: "/chain", method: "POST", body: "my friend" });
    assert.deepEqual([chain.status, chain.text], [200, "hello, MY FRIEND"]);
    // Both group members saw the state from before the group, not each other's output.
    const group = await call(proxy.handler, { path: "/group", method: "POST", body: "x" });
    assert.deepEqual([group.status, group.text], [200, "upper"]);
    // onErr continue stores {"code","message"} under the function's key.
    const continued = await call(proxy.handler, { path: "/continued", method: "POST", body: "" });
    assert.deepEqual([continued.status, JSON.parse(continued.text)], [200, {
      code: 404,
      message: "nope",
    }]);
    // By default an error returns: status = code, Atmo's JSON body, later steps skipped.
    const returned = await call(proxy.handler, { path: "/returned", method: "POST", body: "" });
    assert.deepEqual([returned.status, JSON.parse(returned.text)], [404, {
      status: 404,
      message: "nope",
    }]);
  } finally {
    await proxy.close();
  }
});

Deno.test("headless mode runs one function by identifier, namespace, name and version", async () => {
  const headless = parseDirective(
    `identifier: com.example.proxy
appVersion: v0.1.0
atmoVersion: v0.4.0
headless: true
`,
    { file: "Directive.yaml" },
  );
  const proxy = await proxyWith(
    (fn, body, _params, state) =>
      Promise.resolve({
        ok: true,
        output: new TextEncoder().encode(`${fn}: ${body}, ${state.name ?? "-"}`),
      }),
    {},
    headless,
  );
  try {
    const path = "/com.example.proxy/default/greet/v0.1.0";
    const answer = await call(proxy.handler, {
      path,
      method: "POST",
      body: "hi",
      headers: { "X-Atmo-State": JSON.stringify({ name: "héllo" }) },
    });
    assert.deepEqual([answer.status, answer.text], [200, "greet: hi, héllo"]);
    const bad = await call(proxy.handler, {
      path,
      method: "POST",
      headers: { "X-Atmo-State": '{"name": 1}' },
    });
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.text).message, /"name" must be a string/);
    assert.equal(
      (await call(proxy.handler, { path: "/com.example.proxy/greet", method: "POST" })).status,
      404,
    );
    assert.equal((await call(proxy.handler, { path, method: "GET" })).status, 404);
  } finally {
    await proxy.close();
  }
});

Deno.test("schedules run their steps with method SCHED, an empty body and seeded state", async () => {
  const scheduled = parseDirective(
    `identifier: com.example.proxy
appVersion: v0.1.0
atmoVersion: v0.4.0
schedules:
  - name: tick
    every:
      seconds: 1
    state:
      seed: planted
    steps:
      - fn: greet
      - fn: fail
`,
    { file: "Directive.yaml" },
  );
  const calls: string[] = [];
  const proxy = await proxyWith((fn, body, _params, state, method) => {
    calls.push(`${fn} ${method} [${body}] ${JSON.stringify(state)}`);
    return fn === "fail"
      ? Promise.resolve({ ok: false, code: 500, message: "tick failed" })
      : Promise.resolve({ ok: true, output: new TextEncoder().encode("greeted") });
  });
  const lines: string[] = [];
  const scheduler = new Scheduler(
    createInvoker({ sats: proxy.sats }),
    createLogger({ service: "test", format: "json", write: (line) => lines.push(line) }),
  );
  try {
    scheduler.replace(scheduled.schedules);
    const deadline = Date.now() + 5_000;
    while (!lines.some((l) => l.includes("schedule failed")) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(calls.slice(0, 2), [
      'greet SCHED [] {"seed":"planted"}',
      'fail SCHED [] {"seed":"planted","greet":"greeted"}',
    ]);
    const failure = JSON.parse(lines.find((l) => l.includes("schedule failed"))!);
    assert.equal(failure.schedule, "tick");
    assert.equal(failure.message, "schedule failed");
    assert.equal(failure.error, "tick failed");
  } finally {
    scheduler.close();
    await proxy.close();
  }
});

Deno.test("a stream handler answers each WebSocket text message with its steps' result", async () => {
  const proxy = await proxyWith(hello);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, proxy.handler);
  try {
    const plain = await fetch(`http://127.0.0.1:${server.addr.port}/ws`);
    assert.equal(plain.status, 426);
    await plain.body?.cancel();
    const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}/ws`);
    const replies: string[] = [];
    const done = new Promise<void>((resolve) => {
      socket.onmessage = (event) => {
        replies.push(event.data);
        if (replies.length === 3) resolve();
      };
    });
    await new Promise((resolve) => (socket.onopen = resolve));
    for (const word of ["my friend", "you", "them"]) socket.send(word);
    await done;
    assert.deepEqual(replies, ["hello, my friend", "hello, you", "hello, them"]);
    const closed = new Promise((resolve) => (socket.onclose = resolve));
    socket.close();
    await closed;
  } finally {
    await server.shutdown();
    await proxy.close();
  }
});

Deno.test("a sat that goes away mid-request gives 502", async () => {
  let started: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const proxy = await proxyWith(() => {
    started();
    return new Promise(() => {});
  });
  try {
    const answer = call(proxy.handler, { path: "/hello", method: "POST", body: "x" });
    await running;
    await proxy.satChannel.close();
    const { status, text } = await answer;
    assert.equal(status, 502);
    assert.match(JSON.parse(text).message, /went away/);
  } finally {
    await proxy.close();
  }
});

Deno.test("a client that goes away cancels its invocation on the sat", async () => {
  let cancelled!: (reason: unknown) => void;
  const sawCancel = new Promise((resolve) => (cancelled = resolve));
  const proxy = await proxyWith((_fn, _body, _params, _state, _method, signal) => {
    signal!.addEventListener("abort", () => cancelled(signal!.reason), { once: true });
    return new Promise(() => {}); // runs until cancelled
  });
  try {
    const client = new AbortController();
    const answer = call(proxy.handler, {
      path: "/hello",
      method: "POST",
      body: "x",
      signal: client.signal,
    });
    await new Promise((r) => setTimeout(r, 100)); // longer than the proxy waits to watch
    client.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reason = await Promise.race([
      sawCancel,
      new Promise((resolve) => (timer = setTimeout(() => resolve("no cancel within 5 s"), 5000))),
    ]);
    clearTimeout(timer);
    assert.match(String(reason), /cancelled by the proxy/);
    assert.equal((await answer).status, 499);
  } finally {
    await proxy.close();
  }
});

/** `text` as a request body stream in `piece`-byte chunks: a byte stream, or a plain one. */
function bodyStream(text: string, piece: number, bytes: boolean): ReadableStream<Uint8Array> {
  const all = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    ...(bytes ? { type: "bytes" as const } : {}),
    pull(controller) {
      if (at >= all.length) {
        controller.close();
        // A BYOB read waiting on a closed byte stream is answered with no bytes.
        (controller as ReadableByteStreamController).byobRequest?.respond(0);
        return;
      }
      controller.enqueue(all.slice(at, at += piece));
    },
  });
}

Deno.test("a streamed request body reaches the function whole from any stream, and over the limit gets 413", async (t) => {
  const proxy = await proxyWith(
    (_fn, body) => Promise.resolve({ ok: true, output: new TextEncoder().encode(body) }),
    { maxBodyBytes: 400_000 },
  );
  // No content-length: the body streams to the sat, whatever its size.
  const text = Array.from({ length: 300_000 }, (_, i) => String.fromCharCode(97 + i % 26)).join("");
  try {
    for (const bytes of [true, false]) {
      await t.step(
        bytes ? "a byte stream (read with a BYOB reader)" : "a plain stream",
        async () => {
          // Small pieces, and pieces larger than a read (a filled read grows the next one).
          for (const piece of [10_007, 100_003]) {
            const whole = await call(proxy.handler, {
              path: "/hello",
              method: "POST",
              body: bodyStream(text, piece, bytes),
            });
            assert.equal(whole.status, 200);
            assert.equal(whole.text.length, text.length);
            assert.ok(whole.text === text, `the function saw the body as sent (${piece})`);
          }
          const over = await call(proxy.handler, {
            path: "/hello",
            method: "POST",
            body: bodyStream(text + text, 10_007, bytes),
          });
          assert.equal(over.status, 413);
          assert.match(over.text, /exceeds the limit of 400000 bytes/);
        },
      );
    }
  } finally {
    await proxy.close();
  }
});
