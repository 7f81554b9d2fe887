// deno-lint-ignore-file no-console -- a benchmark report: printing is its job.
/**
 * `deno task bench:compare REV [ROUNDS] [SECONDS]`: the full path of git revision REV beside the
 * working tree's, under the same load, so that a change's effect on speed is measured against
 * its own baseline in the same minutes of this shared machine. Both networks (relay, proxy and
 * sat each) run at once, idle in turn; each round loads one then the other (32 connections,
 * SECONDS each, default 5), ROUNDS times (default 10). It prints each side's median requests/s,
 * p50 and p99, every round's ratio, and the CPU time per request of each process over all
 * rounds: the figure that moves least with the machine's other load.
 *
 * REV is exported with `git archive` into a temporary folder (the repository is not touched) that
 * shares this tree's `node_modules`, and is removed afterwards.
 *
 * @module
 */

import { join } from "node:path";
import { ROOT, type Service } from "../tests/_services.ts";
import { benchArgs } from "./_args.ts";
import { median, Runs } from "./_load.ts";
import { startStratos } from "./_stratos.ts";

const { texts: [rev], numbers } = benchArgs(
  "deno task bench:compare",
  "The full path (proxy, relay, sat, Wasm) of git revision REV beside the working tree's.",
  [{ name: "REV", help: "the git revision to compare with, e.g. HEAD~3 or a commit" }],
  [
    { name: "ROUNDS", help: "rounds of the two loads", default: 10, integer: true },
    { name: "SECONDS", help: "length of each load", default: 5 },
  ],
);
const [ROUNDS, SECONDS] = numbers as [number, number];

/** Exports `rev` into a new temporary folder; its path. */
async function exportRevision(rev: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "stratos-compare-" });
  const archive = await new Deno.Command("git", {
    args: ["-C", ROOT, "archive", "--format=tar", rev],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!archive.success) {
    await Deno.remove(dir, { recursive: true });
    const why = new TextDecoder().decode(archive.stderr).trim();
    console.error(`deno task bench:compare: cannot export revision "${rev}": ${why}`);
    Deno.exit(2);
  }
  const tar = new Deno.Command("tar", { args: ["-x", "-C", dir], stdin: "piped" }).spawn();
  const writer = tar.stdin.getWriter();
  await writer.write(archive.stdout);
  await writer.close();
  if (!(await tar.status).success) throw new Error(`tar could not unpack "${rev}" into ${dir}`);
  await Deno.symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

const tree = await exportRevision(rev!);
const home = await Deno.makeTempDir({ prefix: "stratos-compare-home-" });
const services: Service[] = [];
try {
  const old = await startStratos(services, join(home, "old"), tree);
  const now = await startStratos(services, join(home, "now"), ROOT);
  const side = (name: string, net: typeof old) =>
    new Runs(name, net.url, [net.proxy, net.relay, net.sat], SECONDS);
  const before = side(`${rev}`, old);
  const after = side("working tree", now);
  console.log(
    `Stratos at ${rev} beside the working tree: wrk, 1 thread, 32 connections, ${SECONDS} s ` +
      `each, ${ROUNDS} rounds, alternating\n`,
  );
  for (let round = 0; round < ROUNDS; round++) {
    await before.measure();
    await after.measure();
  }
  const head = (label: string) =>
    `${label.padEnd(38)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${
      "errors".padStart(8)
    }`;
  console.log(head("median of rounds; errors: total"));
  for (const runs of [before, after]) console.log(runs.row());
  const ratios = after.loads.map((load, i) => load.rps / before.loads[i]!.rps);
  console.log(
    `\nworking tree to ${rev}, requests/s by round: ${
      ratios.map((r) => `${r.toFixed(2)}×`).join(", ")
    } (median ${median(ratios).toFixed(2)}×)`,
  );
  console.log("CPU per request (all threads, all rounds):");
  for (const runs of [before, after]) {
    const [proxy, relay, sat] = [0, 1, 2].map((i) => runs.cpuPerRequest(i));
    console.log(`  ${runs.name.padEnd(20)} proxy ${proxy}, relay ${relay}, sat ${sat}`);
  }
} finally {
  for (const service of services.reverse()) await service.stop();
  await Deno.remove(home, { recursive: true });
  await Deno.remove(tree, { recursive: true });
}
