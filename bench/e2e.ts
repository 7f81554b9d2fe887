// deno-lint-ignore-file no-console -- a benchmark report: printing is its job.
/**
 * `deno task bench:e2e`: HTTP load at 32 connections through the full path (client → proxy →
 * relay → sat → Wasm → back), beside a plain `Deno.serve` hello and an OpenSSH reverse tunnel to
 * that hello (`ssh -R` through a throwaway local sshd, when sshd and ssh are installed), all
 * measured in the same run; then the cold-connect time from a sat's first dial to a ready channel
 * through the relay.
 *
 * Load comes from `wrk` (Debian package `wrk`), the lightest load generator here, so that it
 * takes as little of the 2 cores as possible from what it measures.
 *
 * Usage: deno task bench:e2e [SECONDS]   (default 10 s per measurement)
 *
 * @module
 */

import { join } from "node:path";
import { Identity, loadOrCreateIdentity, SecureChannel, TrustPolicy } from "../src/channel/mod.ts";
import { connectRelay } from "../src/link/mod.ts";
import { Service } from "../tests/_services.ts";
import { startSshTunnel } from "./_ssh_tunnel.ts";

const SECONDS = Number(Deno.args[0] ?? 10);
const CONNECTIONS = 32;
const COLD_CONNECTS = 30;

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

async function wrk(url: string): Promise<Load> {
  const script = await Deno.makeTempFile({ suffix: ".lua" });
  await Deno.writeTextFile(
    script,
    `wrk.method = "POST"\nwrk.body = "my friend"\n` +
      `response = function(status, headers, body)\n` +
      `  if status ~= 200 or body ~= "hello, my friend" then wrk.thread:set("bad", (wrk.thread:get("bad") or 0) + 1) end\n` +
      `end\n`,
  );
  try {
    const out = await new Deno.Command("wrk", {
      args: ["-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--latency", "-s", script, url],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
    const socketErrors = /Socket errors: (.*)/.exec(text)?.[1];
    return {
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)![1]),
      p50: ms(/ 50%\s+(\S+)/.exec(text)![1]!),
      p99: ms(/ 99%\s+(\S+)/.exec(text)![1]!),
      errors: non2xx +
        (socketErrors ? socketErrors.match(/\d+/g)!.map(Number).reduce((a, b) => a + b) : 0),
    };
  } finally {
    await Deno.remove(script);
  }
}

const home = await Deno.makeTempDir({ prefix: "stratos-bench-" });
const services: Service[] = [];
try {
  const plain = Service.start("bench:hello", [], {});
  services.push(plain);
  const plainPort = Number((await plain.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]);

  const relay = Service.start("relay", ["--listen", "127.0.0.1:0", "--log-level", "warn"], {
    STRATOS_HOME: join(home, "relay"),
  });
  services.push(relay);
  const relayPort = Number((await relay.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]);
  const proxy = Service.start("proxy", [
    "--relay",
    `127.0.0.1:${relayPort}`,
    "--http",
    "127.0.0.1:0",
    "--log-level",
    "warn",
  ], { STRATOS_HOME: join(home, "proxy") });
  services.push(proxy);
  const httpPort = Number((await proxy.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]);
  const fwd = (await proxy.line(/^(FWD_[0-9a-f]{16})$/))[1]!;
  const satCommand = (await proxy.line(/^sat command: (.*)$/))[1]!;
  const ticket = /--ticket (\S+)/.exec(satCommand)![1]!;
  const sat = Service.start("sat", [
    "--fwd",
    fwd,
    "--relay",
    `127.0.0.1:${relayPort}`,
    "--ticket",
    ticket,
    "--log-level",
    "warn",
  ], { STRATOS_HOME: join(home, "sat") });
  services.push(sat);
  const url = `http://127.0.0.1:${httpPort}/hello`;
  for (let tries = 0; tries < 200; tries++) {
    const r = await fetch(url, { method: "POST", body: "my friend" });
    await r.body?.cancel();
    if (r.status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }

  console.log(
    `Stratos end-to-end benchmark: wrk, 1 thread, ${CONNECTIONS} connections, ${SECONDS} s each`,
  );
  console.log(`(2-core machine: load generator, proxy, relay and sat share it)\n`);
  const plainBefore = await plain.cpuMs();
  const base = await wrk(`http://127.0.0.1:${plainPort}/`);
  const plainCpu = await plain.cpuMs() - plainBefore;
  const tunnel = await startSshTunnel(plainPort);
  let ssh: { load: Load; cpuMs: number } | undefined;
  if (typeof tunnel !== "string") {
    try {
      const before = await tunnel.cpuMs();
      const load = await wrk(`http://127.0.0.1:${tunnel.port}/`);
      ssh = { load, cpuMs: await tunnel.cpuMs() - before };
    } finally {
      await tunnel.stop();
    }
  }
  const nodes: [string, Service][] = [["proxy", proxy], ["relay", relay], ["sat", sat]];
  const cpuBefore = await Promise.all(nodes.map(([, s]) => s.cpuMs()));
  const full = await wrk(url);
  const cpuAfter = await Promise.all(nodes.map(([, s]) => s.cpuMs()));
  const row = (name: string, l: Load) =>
    `${name.padEnd(38)}${l.rps.toFixed(0).padStart(9)}${l.p50.toFixed(2).padStart(9)}${
      l.p99.toFixed(2).padStart(9)
    }${String(l.errors).padStart(8)}`;
  console.log(
    `${"".padEnd(38)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${
      "errors".padStart(8)
    }`,
  );
  console.log(row("plain Deno.serve hello (baseline)", base));
  if (ssh) console.log(row("ssh -R tunnel → the same hello", ssh.load));
  console.log(row("Stratos: proxy → relay → sat → Wasm", full));
  const percent = (l: Load) => `${(l.rps / base.rps * 100).toFixed(1)}%`;
  console.log(`ratio: ${percent(full)} of the baseline's requests/s`);
  if (ssh) {
    console.log(
      `ssh -R: ${percent(ssh.load)} of the baseline; Stratos serves ` +
        `${(full.rps / ssh.load.rps).toFixed(2)}× its requests/s`,
    );
  } else console.log(`ssh -R: not measured (${tunnel})`);
  // CPU per request holds steady on a shared machine, where requests/s do not.
  const perRequest = (ms: number, l: Load) => `${(ms * 1000 / (l.rps * SECONDS)).toFixed(0)} µs`;
  console.log(
    "CPU per request (all threads): " +
      nodes.map(([name], i) => `${name} ${perRequest(cpuAfter[i]! - cpuBefore[i]!, full)}`)
        .join(", ") +
      `; plain hello ${perRequest(plainCpu, base)}` +
      (ssh ? `; ssh + sshd ${perRequest(ssh.cpuMs, ssh.load)} (plus the hello's)` : ""),
  );

  // Cold connect: a fresh relay connection, link, XX handshake and trust check, each time.
  const satHome = join(home, "bench-sat");
  const identity: Identity = await loadOrCreateIdentity(satHome);
  const trust = await TrustPolicy.open({ stateDir: satHome });
  const proxyTicket = await (async () => {
    // Enroll once with a fresh ticket printed by the proxy, so later connects are pinned ones.
    const next = (await proxy.line(
      /^sat command: (.*)$/,
      10_000,
      proxy.lines.indexOf(`sat command: ${satCommand}`) + 1,
    ))[1]!;
    return /--ticket (\S+)/.exec(next)![1]!;
  })();
  const times: number[] = [];
  for (let i = 0; i < COLD_CONNECTS + 1; i++) {
    const start = performance.now();
    const network = await connectRelay({ hostname: "127.0.0.1", port: relayPort });
    const link = await network.connect(fwd);
    const channel = await SecureChannel.initiate(link, {
      identity,
      trust,
      ticket: i === 0 ? proxyTicket : undefined,
    });
    const elapsed = performance.now() - start;
    if (i > 0) times.push(elapsed); // the first one enrolls
    await channel.close();
    network.close();
  }
  times.sort((a, b) => a - b);
  console.log(
    `\ncold connect (relay dial → link → Noise XX → trusted channel), ${COLD_CONNECTS} runs: ` +
      `median ${times[times.length >> 1]!.toFixed(1)} ms, ` +
      `p90 ${times[Math.floor(times.length * 0.9)]!.toFixed(1)} ms (goal <= 20 ms)`,
  );
} finally {
  for (const s of services.reverse()) await s.stop();
  await Deno.remove(home, { recursive: true });
}
