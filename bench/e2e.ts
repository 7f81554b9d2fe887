// deno-lint-ignore-file no-console -- a benchmark report: printing is its job.
/**
 * `deno task bench:e2e`: HTTP load at 32 connections through the full path (client → proxy →
 * relay → sat → Wasm → back), beside a plain `Deno.serve` hello, an OpenSSH reverse tunnel to
 * that hello (`ssh -R` through a throwaway local sshd, when sshd and ssh are installed) and the
 * bare pipeline (bench/_bare_pipeline.ts: the same three processes and TCP hops with none of
 * Stratos's work, the ceiling of this layout), all measured in the same run; then the
 * cold-connect time from a sat's first dial to a ready channel through the relay.
 *
 * Load comes from `wrk` (Debian package `wrk`), the lightest load generator here, so that it
 * takes as little of the 2 cores as possible from what it measures.
 *
 * Usage: deno task bench:e2e [SECONDS] [ROUNDS]   (default 5 s per measurement, 3 rounds)
 *
 * @module
 */

import { join } from "node:path";
import { Identity, loadOrCreateIdentity, SecureChannel, TrustPolicy } from "../src/channel/mod.ts";
import { connectRelay } from "../src/link/mod.ts";
import { Service, startBarePipeline } from "../tests/_services.ts";
import { median, Runs } from "./_load.ts";
import { startStratos } from "./_stratos.ts";
import { numberArgs } from "./_args.ts";
import { startSshTunnel } from "./_ssh_tunnel.ts";

const [SECONDS, ROUNDS] = numberArgs(
  "deno task bench:e2e",
  "HTTP load through proxy, relay, sat and Wasm beside a plain Deno.serve hello (and ssh -R).",
  [
    { name: "SECONDS", help: "length of each load", default: 5 },
    {
      name: "ROUNDS",
      help: "rounds of the three loads, one after the other",
      default: 3,
      integer: true,
    },
  ],
) as [number, number];
const CONNECTIONS = 32;
const COLD_CONNECTS = 30;

const home = await Deno.makeTempDir({ prefix: "stratos-bench-" });
const services: Service[] = [];
try {
  const plain = Service.start("bench:hello", [], {});
  services.push(plain);
  const plainPort = Number((await plain.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]);
  const bare = await startBarePipeline(services);

  const { relay, relayPort, proxy, fwd, satCommand, sat, url } = await startStratos(
    services,
    home,
  );

  console.log(
    `Stratos end-to-end benchmark: wrk, 1 thread, ${CONNECTIONS} connections, ${SECONDS} s each, ` +
      `${ROUNDS} rounds`,
  );
  console.log(`(2-core machine: load generator, proxy, relay and sat share it)\n`);
  const tunnel = await startSshTunnel(plainPort);
  // Each round loads the baseline, the ssh tunnel and Stratos one after the other, so that every
  // ratio compares loads measured a few seconds apart on this shared machine.
  const plainRuns = new Runs(
    "plain Deno.serve hello (baseline)",
    `http://127.0.0.1:${plainPort}/`,
    [plain],
    SECONDS,
  );
  const sshRuns = typeof tunnel === "string" ? undefined : new Runs(
    "ssh -R tunnel → the same hello",
    `http://127.0.0.1:${tunnel.port}/`,
    [tunnel],
    SECONDS,
  );
  const bareRuns = new Runs(
    "bare pipeline: 3 processes, no work",
    `http://127.0.0.1:${bare.port}/`,
    bare.processes,
    SECONDS,
  );
  const nodes: [string, Service][] = [["proxy", proxy], ["relay", relay], ["sat", sat]];
  const stratosRuns = new Runs(
    "Stratos: proxy → relay → sat → Wasm",
    url,
    nodes.map(([, s]) => s),
    SECONDS,
  );
  try {
    for (let round = 0; round < ROUNDS; round++) {
      await plainRuns.measure();
      await sshRuns?.measure();
      await bareRuns.measure();
      await stratosRuns.measure();
    }
  } finally {
    if (typeof tunnel !== "string") await tunnel.stop();
  }
  console.log(
    `${"median of rounds; errors: total".padEnd(38)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${
      "p99 ms".padStart(9)
    }${"errors".padStart(8)}`,
  );
  for (const runs of [plainRuns, sshRuns, bareRuns, stratosRuns]) if (runs) console.log(runs.row());
  const ratios = (of: Runs, to: Runs) => of.loads.map((l, i) => l.rps / to.loads[i]!.rps);
  const percents = (values: number[]) =>
    `${values.map((v) => `${(v * 100).toFixed(1)}%`).join(", ")} (median ${
      (median(values) * 100).toFixed(1)
    }%)`;
  console.log(
    `\nratio to the baseline's requests/s, by round: ${percents(ratios(stratosRuns, plainRuns))}`,
  );
  if (sshRuns) {
    console.log(`ssh -R to the baseline, by round: ${percents(ratios(sshRuns, plainRuns))}`);
    console.log(
      `Stratos to ssh -R, by round: ${
        ratios(stratosRuns, sshRuns).map((v) => `${v.toFixed(2)}×`).join(", ")
      }`,
    );
  } else console.log(`ssh -R: not measured (${tunnel})`);
  console.log(`bare pipeline to the baseline, by round: ${percents(ratios(bareRuns, plainRuns))}`);
  // CPU per request holds steady on a shared machine, where requests/s do not.
  console.log(
    "CPU per request (all threads, all rounds): " +
      nodes.map(([name], i) => `${name} ${stratosRuns.cpuPerRequest(i)}`).join(", ") +
      `; plain hello ${plainRuns.cpuPerRequest(0)}` +
      (sshRuns ? `; ssh + sshd ${sshRuns.cpuPerRequest(0)} (plus the hello's)` : "") +
      `; bare pipeline: front ${bareRuns.cpuPerRequest(0)}, relay ${bareRuns.cpuPerRequest(1)}, ` +
      `back ${bareRuns.cpuPerRequest(2)}`,
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
