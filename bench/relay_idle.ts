/**
 * Memory per idle sat connection at the relay: a relay process (with the exact flags of
 * `deno task relay`), one registered proxy, and N sats (default 10,000), each a TCP connection
 * with a link open to the proxy, then idle. Prints the relay's resident memory before and after
 * and the difference per connection (goal: at most 40 KB, what rathole reaches).
 *
 *   deno task bench:idle [N]
 *
 * @module
 */

import { numberArgs } from "./_args.ts";
import { Identity } from "../src/channel/mod.ts";
import { connectRelay, type LinkNetwork } from "../src/link/mod.ts";
import type { MessageTransport } from "../src/wire/mod.ts";

const N = numberArgs(
  "deno task bench:idle",
  "The relay's memory per idle sat: N connections, each with a link open, then idle.",
  [{ name: "N", help: "idle sat connections", default: 10_000, integer: true }],
)[0]!;
const BATCH = 200;
const tasks = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url))).tasks;
const args = (tasks.relay as string).split(/\s+/).slice(2); // after "deno run"
const home = await Deno.makeTempDir({ prefix: "stratos-bench-idle-" });

async function rssKiB(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(new TextDecoder().decode(stdout))?.[1]);
}

const relay = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    ...args,
    "--listen",
    "127.0.0.1:0",
    "--log-level",
    "warn",
    "--max-links",
    String(N + 16),
    "--max-connections-per-ip",
    String(N + 16),
  ],
  cwd: new URL("..", import.meta.url).pathname,
  env: { STRATOS_HOME: home, NO_COLOR: "1" },
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const reader = relay.stdout.pipeThrough(new TextDecoderStream()).getReader();
let printed = "";
while (!/listening on 127\.0\.0\.1:(\d+)/.test(printed)) {
  const { value, done } = await reader.read();
  if (done) throw new Error("the relay exited");
  printed += value;
}
const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(printed)![1]);
const at = { hostname: "127.0.0.1", port };

const networks: LinkNetwork[] = [];
const links: MessageTransport[] = [];
try {
  const proxy = await connectRelay(at);
  networks.push(proxy);
  const listener = await proxy.listen(Identity.generate());
  (async () => {
    for (let link = await listener.accept(); link; link = await listener.accept()) links.push(link);
  })();
  await new Promise((r) => setTimeout(r, 500));
  const before = await rssKiB(relay.pid);
  const started = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    await Promise.all(
      Array.from({ length: Math.min(BATCH, N - i) }, async () => {
        const network = await connectRelay(at);
        networks.push(network);
        links.push(await network.connect(listener.address));
      }),
    );
  }
  const opened = performance.now() - started;
  // Idle for a while: heartbeats run, buffers settle.
  await new Promise((r) => setTimeout(r, 3000));
  const after = await rssKiB(relay.pid);
  const perConnection = ((after - before) * 1024) / N;
  const out = [
    `sats: ${N} connections, each with a link open, opened in ${Math.round(opened)} ms`,
    `relay resident memory: ${Math.round(before / 1024)} MiB before, ${
      Math.round(after / 1024)
    } MiB after`,
    `relay memory per idle sat connection: ${(perConnection / 1000).toFixed(1)} KB ` +
    `(goal <= 40 KB)`,
  ];
  await Deno.stdout.write(new TextEncoder().encode(out.join("\n") + "\n"));
} finally {
  for (const network of networks) network.close();
  relay.kill("SIGTERM");
  await relay.status;
  await Deno.remove(home, { recursive: true });
}
