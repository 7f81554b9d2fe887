/**
 * End to end: relay, proxy and sat as real processes on loopback, started with the exact
 * permission flags of their deno tasks; the sat started with the command line the proxy prints.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, Service } from "./_services.ts";
import { DIRECTIVE, post, startNetwork, startSat, stopNetwork, whenServing } from "./_network.ts";
import type { TcpTap } from "./_tcp_tap.ts";

Deno.test("the reference design serves hello, my friend; the sat re-attaches without a ticket", async () => {
  const net = await startNetwork();
  try {
    assert.match(
      net.satCommand,
      new RegExp(
        `^deno task sat --fwd ${net.fwd} --relay 127\\.0\\.0\\.1:${net.relayPort} --ticket stratos-ticket-1\\.\\S+$`,
      ),
    );
    // Exactly as printed: the sat needs nothing but the address and the ticket; the proxy
    // delivers the runnables, which the sat caches under their SHA-256.
    const sat = startSat(net, net.satCommand, { shell: true, runnables: false });
    assert.deepEqual(await whenServing(net), { status: 200, text: "hello, my friend" });
    const digest = new Uint8Array(
      await crypto.subtle.digest(
        "SHA-256",
        await Deno.readFile(join(net.runnables, "helloworld-rs/helloworld-rs.wasm")),
      ),
    ).toHex();
    const cached = await Deno.stat(join(net.home, "sat-home/sat/runnables", digest));
    assert.equal(cached.mode! & 0o777, 0o600);

    // The ticket is used up: the proxy printed a fresh sat command for the next sat.
    const fresh = (await net.proxy.line(
      /^sat command: (.*)$/,
      10_000,
      net.proxy.lines.findIndex((l) => l.startsWith("sat command:")) + 1,
    ))[1]!;
    assert.notEqual(fresh, net.satCommand);

    // 200 concurrent requests on the one channel, every answer its own.
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => post(net, "/hello", `friend ${i}`)),
    );
    answers.forEach((a, i) => assert.deepEqual(a, { status: 200, text: `hello, friend ${i}` }));

    // Request state travels between steps: abi_probe ("R4<key>") answers the state value that
    // helloworld-rs stored under its name in the step before.
    assert.deepEqual(await post(net, "/chain", "R4helloworld-rs"), {
      status: 200,
      text: "hello, R4helloworld-rs",
    });

    // Errors are clear and immediate.
    assert.equal((await post(net, "/nope", "")).status, 404);
    const wrongMethod = await fetch(`http://127.0.0.1:${net.httpPort}/hello`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get("allow"), "POST");
    await wrongMethod.body?.cancel();

    // After enrollment, `deno task sat --fwd FWD_x` alone reconnects (same state folder).
    assert.equal((await sat.stop()).code, 0);
    const again = startSat(
      net,
      `deno task sat --fwd ${net.fwd} --relay 127.0.0.1:${net.relayPort}`,
      { runnables: false },
    );
    assert.deepEqual(await whenServing(net), { status: 200, text: "hello, my friend" });
    void again;
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("the relay carries neither the request body nor the response in the clear", async () => {
  const net = await startNetwork({ tap: true });
  try {
    startSat(net, net.satCommand);
    const secret = `my friend ${crypto.randomUUID()}`;
    const deadline = Date.now() + 20_000;
    let answer;
    do {
      answer = await post(net, "/hello", secret);
    } while (answer.status === 503 && Date.now() < deadline);
    assert.deepEqual(answer, { status: 200, text: `hello, ${secret}` });
    const [proxyTap, satTap] = net.taps as TcpTap[];
    assert.ok(proxyTap!.total > 0 && satTap!.total > 0, "both taps carried traffic");
    for (const tap of net.taps as TcpTap[]) {
      assert.equal(tap.contains(new TextEncoder().encode(secret)), false);
      assert.equal(tap.contains(new TextEncoder().encode(`hello, ${secret}`)), false);
      assert.equal(tap.contains(new TextEncoder().encode(secret.slice(10))), false);
    }
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("sats without a trust decision are refused, exit 2, and never get a request", async () => {
  const net = await startNetwork();
  try {
    // No ticket and nothing pinned: the sat itself refuses to talk to an unknown proxy.
    const bare = `deno task sat --fwd ${net.fwd} --relay 127.0.0.1:${net.relayPort}`;
    const stranger = startSat(net, bare, { home: "stranger-home" });
    assert.equal((await stranger.exited()).code, 2);
    assert.match(stranger.stderr, /is not trusted: enroll with a ticket/);

    // A sat that trusts the proxy (its pin copied from an enrolled sat) but whose own identity
    // the proxy never enrolled: the proxy refuses it.
    const enrolled = startSat(net, net.satCommand);
    assert.equal((await whenServing(net)).status, 200);
    await enrolled.stop();
    const impostorState = join(net.home, "impostor-home", "sat");
    await Deno.mkdir(impostorState, { recursive: true, mode: 0o700 });
    await Deno.copyFile(
      join(net.home, "sat-home/sat/trust.json"),
      join(impostorState, "trust.json"),
    );
    await Deno.chmod(join(impostorState, "trust.json"), 0o600);
    const impostor = startSat(net, bare, { home: "impostor-home" });
    assert.equal((await impostor.exited()).code, 2);
    assert.match(impostor.stderr, /refused this node/);
    assert.match(net.proxy.stderr, /refused a sat/);
    assert.equal((await post(net, "/hello", "my friend")).status, 503);
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("a sat refuses a proxy other than the one its ticket names, before revealing it", async () => {
  const net = await startNetwork();
  // A second proxy on the same relay: the sat is pointed at it with the first proxy's ticket.
  const other = Service.start("proxy", [
    "--relay",
    `127.0.0.1:${net.relayPort}`,
    "--http",
    "127.0.0.1:0",
    "--directive",
    net.directive,
  ], { STRATOS_HOME: join(net.home, "other-proxy-home") });
  net.services.push(other);
  try {
    const otherPort = Number((await other.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]);
    const otherFwd = (await other.line(/^(FWD_[0-9a-f]{16})$/))[1]!;
    const misled = startSat(net, net.satCommand.replace(net.fwd, otherFwd));
    const status = await misled.exited();
    assert.equal(status.code, 2);
    assert.match(misled.stderr, /refusing before revealing the ticket/);
    const response = await fetch(`http://127.0.0.1:${otherPort}/hello`, {
      method: "POST",
      body: "x",
    });
    assert.equal(response.status, 503);
    await response.body?.cancel();
    // The ticket was never revealed, so it still enrolls a sat with the right proxy.
    startSat(net, net.satCommand, { home: "sat-home-2" });
    assert.deepEqual(await whenServing(net), { status: 200, text: "hello, my friend" });
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("killing the sat gives 502 in flight and 503 after; a restarted sat serves again", async () => {
  const net = await startNetwork();
  try {
    const sat = startSat(net, net.satCommand);
    assert.equal((await whenServing(net)).status, 200);
    const inFlight = post(net, "/slow", "5000");
    await new Promise((r) => setTimeout(r, 500));
    sat.kill("SIGKILL");
    const cut = await inFlight;
    assert.equal(cut.status, 502);
    assert.match(cut.text, /went away/);
    const none = await post(net, "/hello", "my friend");
    assert.equal(none.status, 503);
    assert.deepEqual(JSON.parse(none.text).status, 503);
    await sat.exited();
    startSat(net, `deno task sat --fwd ${net.fwd} --relay 127.0.0.1:${net.relayPort}`);
    assert.deepEqual(await whenServing(net), { status: 200, text: "hello, my friend" });
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("deno task demo serves hello, my friend and stops cleanly on Ctrl-C", async () => {
  const demo = Service.shell("demo", "exec deno task demo --http 127.0.0.1:0", {});
  try {
    const [, url] = await demo.line(/^try: {2}curl -d "my friend" (\S+)$/);
    const response = await fetch(`http://${url}`, { method: "POST", body: "my friend" });
    assert.equal(await response.text(), "hello, my friend");
    demo.kill("SIGINT");
    assert.equal((await demo.exited()).code, 0);
    await assert.rejects(fetch(`http://${url}`, { method: "POST", body: "x" }));
  } finally {
    demo.kill("SIGKILL");
    await demo.exited();
  }
});

Deno.test("after a relay restart and a proxy restart, the same FWD_x serves and the sat reattaches", async () => {
  const net = await startNetwork();
  try {
    startSat(net, net.satCommand);
    assert.equal((await whenServing(net)).status, 200);

    // The relay restarts on the same port with the same state folder.
    assert.equal((await net.relay.stop()).code, 0);
    const relay = Service.start("relay", ["--listen", `127.0.0.1:${net.relayPort}`], {
      STRATOS_HOME: join(net.home, "relay-home"),
    });
    net.services.splice(net.services.indexOf(net.relay), 1, relay);
    await relay.line(/^listening on /);
    assert.deepEqual(await whenServing(net), { status: 200, text: "hello, my friend" });

    // The proxy restarts with its state folder: same address, and the pinned sat comes back.
    assert.equal((await net.proxy.stop()).code, 0);
    const proxy = Service.start("proxy", [
      "--relay",
      `127.0.0.1:${net.relayPort}`,
      "--http",
      "127.0.0.1:0",
      "--directive",
      net.directive,
    ], { STRATOS_HOME: join(net.home, "proxy-home") });
    net.services.splice(net.services.indexOf(net.proxy), 1, proxy);
    net.httpPort = Number((await proxy.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]);
    assert.equal((await proxy.line(/^(FWD_[0-9a-f]{16})$/))[1], net.fwd);
    assert.deepEqual(await whenServing(net), { status: 200, text: "hello, my friend" });
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("a proxy given a broken Directive exits 1 and names file, line and column", async () => {
  const home = await Deno.makeTempDir({ prefix: "stratos-e2e-" });
  try {
    const directive = join(home, "Directive.yaml");
    await Deno.writeTextFile(directive, DIRECTIVE.replace("resource: /hello", "resource: hello"));
    const proxy = Service.start("proxy", ["--directive", directive, "--http", "127.0.0.1:0"], {
      STRATOS_HOME: join(home, "proxy-home"),
    });
    assert.equal((await proxy.exited()).code, 1);
    assert.ok(
      proxy.stderr.includes(
        `${directive}:6:5: handlers[0].resource: "hello" must start with "/" (did you mean "/hello"?)`,
      ),
      proxy.stderr,
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("editing Directive.yaml changes routes live; a broken edit keeps the last good one", async () => {
  const net = await startNetwork();
  try {
    startSat(net, net.satCommand, { runnables: false });
    assert.equal((await whenServing(net)).status, 200);
    assert.equal((await post(net, "/greet", "x")).status, 404);

    // A new route appears without a restart.
    await Deno.writeTextFile(
      net.directive,
      DIRECTIVE.replaceAll("resource: /hello", "resource: /greet"),
    );
    const deadline = Date.now() + 10_000;
    let answer = await post(net, "/greet", "my friend");
    while (answer.status === 404 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      answer = await post(net, "/greet", "my friend");
    }
    assert.deepEqual(answer, { status: 200, text: "hello, my friend" });
    assert.equal((await post(net, "/hello", "x")).status, 404);

    // A broken edit is refused, named by file:line:column, and /greet keeps serving.
    await Deno.writeTextFile(
      net.directive,
      DIRECTIVE.replace("resource: /hello", "resource: hello"),
    );
    const logged = Date.now() + 10_000;
    while (!net.proxy.stderr.includes("refused the changed Directive") && Date.now() < logged) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(
      net.proxy.stderr.includes(`${net.directive}:6:5: handlers[0].resource`),
      net.proxy.stderr,
    );
    assert.deepEqual(await post(net, "/greet", "still"), { status: 200, text: "hello, still" });

    // A new route with a new runnable: the proxy delivers it, nothing is done at the edge.
    await Deno.mkdir(join(net.runnables, "counter"));
    await Deno.copyFile(
      join(ROOT, "tests/wasm/counter.wasm"),
      join(net.runnables, "counter/counter.wasm"),
    );
    await Deno.writeTextFile(
      net.directive,
      DIRECTIVE.replaceAll("resource: /hello", "resource: /greet") +
        "  - type: request\n    resource: /count\n    method: POST\n    steps:\n      - fn: counter\n",
    );
    const counted = Date.now() + 15_000;
    let count = await post(net, "/count", "");
    while (count.status === 404 && Date.now() < counted) {
      await new Promise((r) => setTimeout(r, 50));
      count = await post(net, "/count", "");
    }
    // counter.wat answers its two counters after one increment: a clean instance gives "1,1".
    assert.deepEqual(count, { status: 200, text: "1,1" });
    assert.deepEqual(await post(net, "/greet", "again"), { status: 200, text: "hello, again" });
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("hot reloads under load drop no request", async () => {
  const net = await startNetwork();
  try {
    startSat(net, net.satCommand, { runnables: false });
    assert.equal((await whenServing(net)).status, 200);
    await Deno.mkdir(join(net.runnables, "counter"));
    await Deno.copyFile(
      join(ROOT, "tests/wasm/counter.wasm"),
      join(net.runnables, "counter/counter.wasm"),
    );
    const withCounter = DIRECTIVE +
      "  - type: request\n    resource: /count\n    method: POST\n    steps:\n      - fn: counter\n";
    let stop = false;
    const results: { status: number; text: string; i: number }[] = [];
    const load = Array.from({ length: 16 }, async (_, worker) => {
      for (let i = 0; !stop; i++) {
        const n = worker * 100_000 + i;
        results.push({ ...await post(net, "/hello", `friend ${n}`), i: n });
      }
    });
    // Edits: a new route with a new runnable, a changed route, and a removal; each must be
    // swapped in while /hello keeps answering.
    const edits = [
      withCounter,
      withCounter.replace("resource: /chain", "resource: /chained"),
      DIRECTIVE,
    ];
    const reloads = () => net.proxy.stderr.split("reloaded the Directive").length - 1;
    for (const [n, edit] of edits.entries()) {
      await Deno.writeTextFile(net.directive, edit);
      const deadline = Date.now() + 15_000;
      while (reloads() < n + 1 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(reloads(), n + 1, net.proxy.stderr);
      await new Promise((r) => setTimeout(r, 300));
    }
    stop = true;
    await Promise.all(load);
    const failed = results.filter((r) => r.status !== 200 || r.text !== `hello, friend ${r.i}`);
    assert.ok(results.length > 100, `only ${results.length} requests were made`);
    assert.deepEqual(failed, [], `${failed.length} of ${results.length} requests failed`);
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("proxy and sat serve /metrics, /health and /ready", async () => {
  const net = await startNetwork();
  try {
    const get = async (port: number, path: string) => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: response.status, text: await response.text() };
    };
    assert.equal((await get(net.httpPort, "/health")).status, 200);
    assert.deepEqual(await get(net.httpPort, "/ready"), {
      status: 503,
      text: "not ready: no sat is attached\n",
    });
    const sat = startSat(net, `${net.satCommand} --metrics 127.0.0.1:0`, { runnables: false });
    const satPort = Number((await sat.line(/^metrics listening on 127\.0\.0\.1:(\d+)$/))[1]);
    assert.equal((await whenServing(net)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await post(net, "/hello", "m")).status, 200);
    assert.equal((await post(net, "/nope", "")).status, 404);
    assert.equal((await get(net.httpPort, "/ready")).status, 200);
    assert.equal((await get(satPort, "/ready")).status, 200);

    const proxyPage = (await get(net.httpPort, "/metrics")).text;
    const count = (page: string, series: string) =>
      Number(page.split("\n").find((l) => l.startsWith(series + " "))?.split(" ")[1] ?? "NaN");
    assert.ok(
      count(proxyPage, 'stratos_http_requests_total{route="/hello",method="POST",status="200"}') >=
        4,
      proxyPage,
    );
    assert.equal(
      count(proxyPage, 'stratos_http_requests_total{route="(none)",method="POST",status="404"}'),
      1,
    );
    assert.equal(count(proxyPage, "stratos_sats_connected"), 1);
    assert.ok(count(proxyPage, 'stratos_invocations_total{fn="helloworld-rs",outcome="ok"}') >= 4);
    assert.equal(count(proxyPage, 'stratos_handshakes_total{result="ok",reason="enrolled"}'), 1);
    assert.equal(count(proxyPage, 'stratos_deployments_total{result="applied"}'), 1);
    assert.match(
      proxyPage,
      /stratos_http_request_duration_seconds_bucket\{route="\/hello",le="\+Inf"\} \d+/,
    );

    const relayOps = Service.start(
      "relay",
      ["--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"],
      {
        STRATOS_HOME: join(net.home, "relay2-home"),
      },
    );
    net.services.push(relayOps);
    const relayMetricsPort = Number(
      (await relayOps.line(/^metrics listening on 127\.0\.0\.1:(\d+)$/))[1],
    );
    const relayPage = (await get(relayMetricsPort, "/metrics")).text;
    assert.equal(count(relayPage, "stratos_relay_connections"), 0);
    assert.match(relayPage, /^stratos_relay_refused_connections_total\{limit="per_ip"\} 0$/m);
    assert.equal((await get(relayMetricsPort, "/health")).status, 200);

    const satPage = (await get(satPort, "/metrics")).text;
    assert.ok(
      count(satPage, 'stratos_sat_invocations_total{fn="helloworld-rs",outcome="ok"}') >= 4,
    );
    assert.equal(count(satPage, "stratos_sat_connected"), 1);
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("SIGTERM drains: sat and proxy finish the request in flight, then exit 0", async () => {
  const net = await startNetwork();
  try {
    const sat = startSat(net, net.satCommand, { runnables: false });
    assert.equal((await whenServing(net)).status, 200);
    // The sat is told to stop while it runs a 1.5 s invocation: the caller still gets it.
    const slow = post(net, "/slow", "1500");
    await new Promise((r) => setTimeout(r, 400));
    sat.kill("SIGTERM");
    assert.deepEqual(await slow, { status: 200, text: "1500" });
    assert.equal((await sat.exited()).code, 0);
    assert.equal((await post(net, "/hello", "x")).status, 503);

    // The same for the proxy.
    const second = startSat(
      net,
      `deno task sat --fwd ${net.fwd} --relay 127.0.0.1:${net.relayPort}`,
      {
        runnables: false,
      },
    );
    assert.equal((await whenServing(net)).status, 200);
    const slower = post(net, "/slow", "1500");
    await new Promise((r) => setTimeout(r, 400));
    net.proxy.kill("SIGTERM");
    assert.deepEqual(await slower, { status: 200, text: "1500" });
    assert.equal((await net.proxy.exited()).code, 0);
    void second;
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("deno task ticket enrolls another sat next to a running proxy; identity shows ids", async () => {
  const net = await startNetwork();
  try {
    const env = { STRATOS_HOME: join(net.home, "proxy-home") };
    const issued = Service.start("ticket", ["--relay", `127.0.0.1:${net.relayPort}`], env);
    assert.equal((await issued.exited()).code, 0, issued.stderr);
    const line = issued.lines.find((l) => l.startsWith("sat command: "))!;
    assert.match(
      line,
      new RegExp(`--fwd ${net.fwd} --relay 127\\.0\\.0\\.1:${net.relayPort} --ticket `),
    );
    startSat(net, line.slice("sat command: ".length), { runnables: false });
    assert.deepEqual(await whenServing(net), { status: 200, text: "hello, my friend" });

    const shown = Service.start("identity", ["show", "--role", "proxy"], env);
    assert.equal((await shown.exited()).code, 0, shown.stderr);
    assert.match(shown.lines[0]!, /^I[0-9a-f]{64}$/);
    assert.match(net.proxy.stderr, new RegExp(shown.lines[0]!));
    const none = Service.start("identity", ["show", "--role", "relay"], {
      STRATOS_HOME: join(net.home, "nobody"),
    });
    assert.equal((await none.exited()).code, 1);
    assert.match(none.stderr, /has no identity .* deno task identity create --role relay/);
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("a request id follows a request from the client through proxy and sat logs", async () => {
  const net = await startNetwork({ proxyArgs: ["--log-level", "debug"] });
  try {
    const sat = startSat(net, `${net.satCommand} --log-level debug`, { runnables: false });
    assert.equal((await whenServing(net)).status, 200);
    const response = await fetch(`http://127.0.0.1:${net.httpPort}/hello`, {
      method: "POST",
      body: "traced",
      headers: { "x-request-id": "trace-4f2a9c" },
    });
    assert.equal(await response.text(), "hello, traced");
    assert.equal(response.headers.get("x-request-id"), "trace-4f2a9c");
    const deadline = Date.now() + 5000;
    while (!sat.stderr.includes("trace-4f2a9c") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(sat.stderr, /"requestId":"trace-4f2a9c"[^\n]*"message":"invocation"/);
    assert.match(net.proxy.stderr, /trace-4f2a9c/);
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("a sat running its own --runnables gets no fn whose copy differs from the proxy's", async () => {
  const net = await startNetwork();
  try {
    // This edge's "helloworld-rs" is another module: the proxy must not send it /hello.
    const other = join(net.home, "other-runnables");
    await Deno.mkdir(other);
    await Deno.copyFile(join(ROOT, "tests/wasm/slow.wasm"), join(other, "helloworld-rs.wasm"));
    const sat = startSat(net, net.satCommand, { runnables: other });
    const deadline = Date.now() + 20_000;
    while (!net.proxy.stderr.includes("sat connected") && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(net.proxy.stderr.includes("sat connected"), net.proxy.stderr);
    const answer = await post(net, "/hello", "5");
    assert.equal(answer.status, 503, answer.text);
    assert.match(answer.text, /helloworld-rs/);
    void sat;
  } finally {
    await stopNetwork(net);
  }
});

Deno.test("proxy --check validates Directive and runnables without network or keys", async () => {
  const home = await Deno.makeTempDir({ prefix: "stratos-check-" });
  try {
    await Deno.mkdir(join(home, "runnables"));
    await Deno.copyFile(
      join(ROOT, "runnables/helloworld-rs/helloworld-rs.wasm"),
      join(home, "runnables/helloworld-rs.wasm"),
    );
    const good = join(home, "Directive.yaml");
    await Deno.writeTextFile(good, DIRECTIVE.split("  - type: request\n    resource: /slow")[0]!);
    const env = { STRATOS_HOME: join(home, "state") };
    const ok = Service.start("proxy", ["--check", "--directive", good], env);
    assert.equal((await ok.exited()).code, 0, ok.stderr);
    assert.deepEqual(ok.lines, [`${good}: ok`]);

    const typo = join(home, "Typo.yaml");
    await Deno.writeTextFile(
      typo,
      DIRECTIVE.split("  - type: request\n    resource: /slow")[0]!.replace(
        "fn: helloworld-rs",
        "fn: helloworld-r",
      ),
    );
    const bad = Service.start("proxy", ["--check", "--directive", typo], env);
    assert.equal((await bad.exited()).code, 1);
    assert.match(
      bad.stderr,
      new RegExp(`^${typo}:9:\\d+: handlers\\[0\\]\\.steps\\[0\\]\\.fn: .*"helloworld-rs"`, "m"),
    );
    // Nothing was created: no identity, no state folder.
    await assert.rejects(Deno.stat(join(home, "state")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
