// deno-lint-ignore-file no-console -- a benchmark report: printing is its job.
/**
 * What V8's garbage collector does on the sat's job path, with and without allocation-site
 * pretenuring: helloworld-rs jobs through a {@linkcode RunnablePool}, 32 in flight, each with its
 * own request fields and `AbortSignal`, as the sat submits them. For each setting, a child process
 * runs the jobs under `--trace-gc-nvp`; this reports the bytes promoted to the old generation per
 * job, the time spent in young collections, and the full collections.
 *
 * The services run with `--no-allocation-site-pretenuring` (deno.json) because of these figures:
 * V8 decides from young collections that the job's objects live long, allocates them in the old
 * generation, and that fills with garbage.
 *
 * Run: deno run --allow-read --allow-run bench/job_gc.ts [JOBS]   (default 200,000)
 *
 * @module
 */

import { numberArgs } from "./_args.ts";
import { Runnable, RunnablePool } from "../src/wasm/mod.ts";

const CHILD = "--child";
const child = Deno.args.includes(CHILD);
const JOBS = child ? Number(Deno.args[0]) : numberArgs(
  "deno run --allow-read --allow-run bench/job_gc.ts",
  "helloworld-rs jobs through a RunnablePool with and without V8's allocation-site pretenuring.",
  [{ name: "JOBS", help: "jobs per setting", default: 200_000, integer: true }],
)[0]!;
const IN_FLIGHT = 32;

if (child) {
  const bytes = await Deno.readFile(
    new URL("../runnables/helloworld-rs/helloworld-rs.wasm", import.meta.url),
  );
  const pool = new RunnablePool({});
  const runnable = await Runnable.load("helloworld-rs", bytes, { pool });
  const input = new TextEncoder().encode("my friend");
  let left = JOBS;
  const started = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (left-- > 0) {
      const controller = new AbortController();
      const result = await runnable.run(input, {
        method: "POST",
        url: "/hello",
        id: "job",
        body: input,
        headers: { host: "127.0.0.1:8080", "content-length": "9" },
        params: {},
        state: {},
      }, { signal: controller.signal });
      if (!result.ok) throw new Error(`the job failed: ${result.message}`);
    }
  }));
  // The GC trace goes to stdout too, unsynchronised: this is found by its marker.
  console.log(`\nRESULT ${(performance.now() - started) * 1000 / JOBS}`);
  runnable.close();
  pool.close();
} else {
  console.log(`${JOBS} helloworld-rs jobs through a RunnablePool, ${IN_FLIGHT} in flight\n`);
  console.log(
    `${"".padEnd(34)}${"µs/job".padStart(8)}${"promoted B/job".padStart(16)}${
      "young GC ms".padStart(13)
    }${"full GCs".padStart(10)}`,
  );
  for (
    const [name, flags] of <[string, string][]> [
      ["pretenuring on (V8's default)", "--max-semi-space-size=4"],
      [
        "--no-allocation-site-pretenuring",
        "--max-semi-space-size=4,--no-allocation-site-pretenuring",
      ],
    ]
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        `--v8-flags=--trace-gc-nvp,${flags}`,
        new URL(import.meta.url).pathname,
        String(JOBS),
        CHILD,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error(`the ${name} run failed`);
    let promoted = 0;
    let young = 0;
    let full = 0;
    let perJob = NaN;
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const result = /RESULT ([\d.]+)/.exec(line);
      if (result) perJob = Number(result[1]);
      // A trace line may be cut by another thread's output: read only the fields needed.
      const kind = /"gc":"(\w+)"/.exec(line)?.[1];
      const pause = Number(/"pause":([\d.]+)/.exec(line)?.[1]);
      if (kind === undefined || Number.isNaN(pause)) continue;
      if (kind === "s") {
        promoted += Number(/"promoted":(\d+)/.exec(line)?.[1] ?? 0);
        young += pause;
      } else full++;
    }
    console.log(
      `${name.padEnd(34)}${perJob.toFixed(1).padStart(8)}${
        (promoted / JOBS).toFixed(0).padStart(16)
      }${young.toFixed(0).padStart(13)}${String(full).padStart(10)}`,
    );
  }
}
