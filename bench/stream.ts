// deno-lint-ignore-file no-console -- a benchmark report: printing is its job.
/**
 * `deno task bench:stream [MIB]`: throughput of one large body (default 100 MiB) through the
 * whole path (client → proxy → relay → sat → Wasm), beside a plain `Deno.serve` that reads the
 * same body in the same run: upload alone (the runnable answers 16 bytes) and echo (the body
 * back), the best and the median of 5 runs each. Goal: >= 250 MB/s through the full path.
 *
 * The client is `curl` (Debian package `curl`), sending the body from a file: the lightest
 * client here, so that it takes as little of the 2 cores as possible from what it measures (a
 * `fetch` in this process took about a third of a core more), as `wrk` does in bench:e2e.
 *
 * @module
 */

import { numberArgs } from "./_args.ts";
import {
  startNetwork,
  startSat,
  stopNetwork,
  STREAM_DIRECTIVE,
  STREAM_RUNNABLES,
} from "../tests/_network.ts";

const MiB = 1024 * 1024;
const SIZE = numberArgs(
  "deno task bench:stream",
  "One large body through proxy, relay, sat and Wasm, beside a plain Deno.serve reading it.",
  [{ name: "MIB", help: "size of the body in MiB", default: 100, integer: true }],
)[0]! * MiB;
const RUNS = 5;

const data = new Uint8Array(SIZE);
for (let i = 0; i < SIZE; i += 4096) data[i] = i & 0xff;
const bodyFile = await Deno.makeTempFile({ prefix: "stratos-stream-" });
await Deno.writeFile(bodyFile, data);

/**
 * The best and the median of RUNS, in MB/s (10^6 bytes), counting the bytes that crossed once
 * or twice: on a shared machine the best shows what the path can do, the median how steadily.
 */
async function measure(url: string, bytesMoved: number): Promise<{ best: number; median: number }> {
  const seconds: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = await new Deno.Command("curl", {
      // No "Expect: 100-continue" wait; the answer is read and dropped.
      args: ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-H", "Expect:"]
        .concat(["-H", "Content-Type: application/octet-stream", "--data-binary"])
        .concat([`@${bodyFile}`, url]),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const [status, time] = new TextDecoder().decode(out.stdout).split(" ");
    if (!out.success || status !== "200") {
      throw new Error(`curl ${url}: ${status} ${new TextDecoder().decode(out.stderr)}`);
    }
    seconds.push(Number(time));
  }
  seconds.sort((a, b) => a - b);
  const rate = (s: number) => bytesMoved / 1e6 / s;
  return { best: rate(seconds[0]!), median: rate(seconds[Math.floor(RUNS / 2)]!) };
}

/** `best (median m)`, in MB/s. */
function figures({ best, median }: { best: number; median: number }): string {
  return `${best.toFixed(0).padStart(6)} MB/s (median ${median.toFixed(0)})`;
}

const plain = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
  const reader = req.body!.getReader();
  let n = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) n += r.value.length;
  return new Response(String(n));
});
const net = await startNetwork({
  directive: STREAM_DIRECTIVE,
  runnables: STREAM_RUNNABLES,
  proxyArgs: ["--max-body", String(2 * SIZE), "--log-level", "warn"],
});
try {
  startSat(
    net,
    `${net.satCommand} --workers 1 --max-body ${Math.ceil((SIZE * 2) / MiB)} ` +
      `--memory-limit ${Math.ceil((SIZE * 3) / MiB)} --max-output ${Math.ceil((SIZE * 2) / MiB)} ` +
      "--time-limit 120000 --log-level warn",
    { runnables: false },
  );
  for (let i = 0; i < 400; i++) {
    const r = await fetch(`http://127.0.0.1:${net.httpPort}/tail`, { method: "POST", body: "x" });
    if ((await r.text()) === "x") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const base = await measure(`http://127.0.0.1:${plain.addr.port}/`, SIZE);
  const upload = await measure(`http://127.0.0.1:${net.httpPort}/tail`, SIZE);
  const echo = await measure(`http://127.0.0.1:${net.httpPort}/echo`, 2 * SIZE);
  console.log(
    `one ${SIZE / MiB} MiB body, best and median of ${RUNS} (2-core machine, all on loopback)`,
  );
  console.log(`plain Deno.serve reading it (baseline):     ${figures(base)}`);
  console.log(
    `Stratos upload, proxy → relay → sat → Wasm: ${figures(upload)}, ` +
      `${(upload.best / base.best * 100).toFixed(0)}% of the baseline; goal >= 250 MB/s`,
  );
  console.log(`Stratos echo, both ways (bytes moved):      ${figures(echo)}`);
} finally {
  await stopNetwork(net);
  await plain.shutdown();
  await Deno.remove(bodyFile);
}
