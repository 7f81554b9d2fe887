/**
 * A relay, a proxy and sats as real processes on loopback, started with the exact permission
 * flags of their deno tasks, for end-to-end tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, Service } from "./_services.ts";
import { TcpTap } from "./_tcp_tap.ts";
import { DisruptiveTap } from "./_disruptive_tap.ts";

/** A Directive for large bodies: /tail answers the last 16 bytes, /echo the whole body. */
export const STREAM_DIRECTIVE = `identifier: com.example.stream
appVersion: v0.1.0
atmoVersion: v0.4.0
handlers:
  - type: request
    resource: /tail
    method: POST
    steps:
      - fn: tail16
  - type: request
    resource: /echo
    method: POST
    steps:
      - fn: echo
`;

/** The runnables of {@linkcode STREAM_DIRECTIVE}. */
export const STREAM_RUNNABLES: Record<string, string> = {
  tail16: "tests/wasm/tail16.wasm",
  echo: "tests/wasm/echo.wasm",
};

/** A pass-through between a node and the relay. */
export type Tap = TcpTap | DisruptiveTap;

/** The Directive every network starts with. */
export const DIRECTIVE = `identifier: com.example.e2e
appVersion: v0.1.0
atmoVersion: v0.4.0
handlers:
  - type: request
    resource: /hello
    method: POST
    steps:
      - fn: helloworld-rs
  - type: request
    resource: /slow
    method: POST
    steps:
      - fn: slow
  - type: request
    resource: /chain
    method: POST
    steps:
      - fn: helloworld-rs
      - fn: abi_probe
`;

/** A relay and proxy as processes, and the sats started on them. */
export interface Network {
  home: string;
  relay: Service;
  proxy: Service;
  relayPort: number;
  httpPort: number;
  fwd: string;
  satCommand: string;
  runnables: string;
  directive: string;
  services: Service[];
  taps: Tap[];
}

/**
 * Starts relay and proxy on loopback in a fresh folder holding the Directive and runnables.
 * With `tap`, each node reaches the relay through its own pass-through (a byte-logging one, or
 * a disruptive one with `tap: "disruptive"`), listed in `taps` in start order (proxy first).
 */
export async function startNetwork(
  options: {
    tap?: boolean | "disruptive";
    /** Another Directive (its runnables must be among those copied). */
    directive?: string;
    /** More runnables beside the Directive: name → the .wasm file (repo-relative). */
    runnables?: Record<string, string>;
    /** More environment for the proxy (e.g. the variables of `env(NAME)` values). */
    proxyEnv?: Record<string, string>;
    /** More flags for the proxy. */
    proxyArgs?: string[];
  } = {},
): Promise<Network> {
  const home = await Deno.makeTempDir({ prefix: "stratos-e2e-" });
  const runnables = join(home, "runnables");
  await Deno.mkdir(join(runnables, "slow"), { recursive: true });
  await Deno.mkdir(join(runnables, "helloworld-rs"), { recursive: true });
  await Deno.copyFile(
    join(ROOT, "runnables/helloworld-rs/helloworld-rs.wasm"),
    join(runnables, "helloworld-rs/helloworld-rs.wasm"),
  );
  await Deno.copyFile(
    join(ROOT, "tests/wasm/slow.wasm"),
    join(runnables, "slow/slow.wasm"),
  );
  await Deno.copyFile(join(ROOT, "tests/wasm/abi_probe.wasm"), join(runnables, "abi_probe.wasm"));
  for (const [name, file] of Object.entries(options.runnables ?? {})) {
    await Deno.mkdir(join(runnables, name));
    await Deno.copyFile(join(ROOT, file), join(runnables, name, `${name}.wasm`));
  }
  const directive = join(home, "Directive.yaml");
  await Deno.writeTextFile(directive, options.directive ?? DIRECTIVE);

  const relay = Service.start("relay", ["--listen", "127.0.0.1:0"], {
    STRATOS_HOME: join(home, "relay-home"),
  });
  const relayPort = Number((await relay.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]);
  const taps: Tap[] = [];
  const relayFor = () => {
    if (!options.tap) return relayPort;
    const target = { hostname: "127.0.0.1", port: relayPort };
    const tap = options.tap === "disruptive"
      ? new DisruptiveTap(target, taps.length + 1)
      : new TcpTap(target);
    taps.push(tap);
    return tap.port;
  };
  const proxy = Service.start("proxy", [
    "--relay",
    `127.0.0.1:${relayFor()}`,
    "--http",
    "127.0.0.1:0",
    "--directive",
    directive,
    "--timeout",
    "15000",
    ...options.proxyArgs ?? [],
  ], { STRATOS_HOME: join(home, "proxy-home"), ...options.proxyEnv });
  const httpPort = Number((await proxy.line(/^listening on 127\.0\.0\.1:(\d+)$/))[1]);
  const fwd = (await proxy.line(/^(FWD_[0-9a-f]{16})$/))[1]!;
  let satCommand = (await proxy.line(/^sat command: (.*)$/))[1]!;
  if (options.tap) {
    satCommand = satCommand.replace(/--relay 127\.0\.0\.1:\d+/, `--relay 127.0.0.1:${relayFor()}`);
  }
  return {
    home,
    relay,
    proxy,
    relayPort,
    httpPort,
    fwd,
    satCommand,
    runnables,
    directive,
    services: [relay, proxy],
    taps,
  };
}

/**
 * Starts a sat from a `deno task sat ...` line: as a user would (through a shell, from the
 * repo root) when `shell` is set, else as the task's own process, so that SIGKILL reaches it.
 */
export function startSat(
  net: Network,
  line: string,
  options: { home?: string; shell?: boolean; runnables?: string | false } = {},
) {
  const env = { STRATOS_HOME: join(net.home, options.home ?? "sat-home") };
  const prefix = "deno task sat ";
  assert.ok(line.startsWith(prefix), line);
  // By default the sat runs its own copies (--runnables); `runnables: false` runs it exactly as
  // printed, taking what the proxy delivers.
  const pinned = options.runnables === false
    ? []
    : ["--runnables", options.runnables ?? net.runnables];
  const sat = options.shell
    ? Service.shell("sat", ["exec", line, ...pinned].join(" "), env)
    : Service.start("sat", [...line.slice(prefix.length).split(" "), ...pinned], env);
  net.services.push(sat);
  return sat;
}

/** Stops every service and tap, and removes the folder. */
export async function stopNetwork(net: Network): Promise<void> {
  for (const service of net.services.reverse()) await service.stop();
  for (const tap of net.taps) await tap.close();
  await Deno.remove(net.home, { recursive: true });
}

/** POSTs `body` to the proxy; the status and text of the answer. */
export async function post(net: Network, path: string, body: string, signal?: AbortSignal) {
  const response = await fetch(`http://127.0.0.1:${net.httpPort}${path}`, {
    method: "POST",
    body,
    signal,
  });
  return { status: response.status, text: await response.text() };
}

/** Posts until the answer is not 503 (no sat yet), for at most `ms`. */
export async function whenServing(net: Network, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (true) {
    const answer = await post(net, "/hello", "my friend");
    if (answer.status !== 503 || Date.now() > deadline) return answer;
    await new Promise((r) => setTimeout(r, 50));
  }
}
