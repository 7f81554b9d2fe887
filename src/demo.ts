/**
 * `deno task demo`: relay, proxy and sat on loopback in one process, with trust set up
 * automatically in a throwaway state folder. Prints the curl line to try; Ctrl-C stops it all
 * and removes the folder.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { loadOrCreateIdentity, TrustPolicy } from "./channel/mod.ts";
import {
  announce,
  type CommandSpec,
  COMMON_FLAGS,
  formatHostPort,
  parseHostPort,
  runService,
} from "./cli/mod.ts";
import { loadDirectiveFile } from "./directive/mod.ts";
import { ProxyNode, routeResolver } from "./proxy/mod.ts";
import { RelayServer } from "./relay/mod.ts";
import { SatNode, wasmRunner } from "./sat/mod.ts";
import { loadRunnables } from "./wasm/mod.ts";

const COMMAND: CommandSpec = {
  usage: "deno task demo [flags]",
  summary: "Runs the whole reference design on this machine: a relay, a proxy serving\n" +
    "Directive.yaml, and a sat running the runnables, all on loopback, in one process.\n" +
    "Keys live in a throwaway folder removed on exit. Ctrl-C stops everything.",
  flags: [
    {
      name: "http",
      type: "string",
      default: "127.0.0.1:8080",
      valueName: "HOST:PORT",
      description: "where the proxy serves HTTP",
    },
    {
      name: "directive",
      type: "string",
      default: "Directive.yaml",
      valueName: "FILE",
      description: "the Directive to serve",
    },
    {
      name: "runnables",
      type: "string",
      default: "runnables",
      valueName: "DIR",
      description: "the sat's runnables",
    },
    ...COMMON_FLAGS.map((f) => f.name === "log-level" ? { ...f, default: "warn" } : f),
  ],
};

await runService("demo", COMMAND, async (flags, log) => {
  const http = parseHostPort(flags.http as string, "http");
  const base = Deno.env.get("INIT_CWD") ?? Deno.cwd();
  const directive = await loadDirectiveFile(resolve(base, flags.directive as string));
  const runnables = await loadRunnables(resolve(base, flags.runnables as string), {
    log: (level, message, fields) => log[level](message, fields),
    workerPermissions: "none",
  });
  const home = await Deno.makeTempDir({ prefix: "stratos-demo-" });
  const cleanUp: (() => Promise<void>)[] = [
    () => Deno.remove(home, { recursive: true }),
    () => Promise.resolve(runnables.forEach((runnable) => runnable.close())),
  ];
  const close = async () => {
    for (const step of cleanUp.reverse()) await step().catch(() => {});
  };
  try {
    const relay = await RelayServer.start({
      hostname: "127.0.0.1",
      port: 0,
      stateDir: join(home, "relay"),
      log: (level, message, fields) => log.child({ component: "relay" })[level](message, fields),
    });
    cleanUp.push(() => relay.close());
    const relayAddr = { hostname: "127.0.0.1", port: relay.addr.port };
    announce(`relay listening on ${formatHostPort(relayAddr)}`);

    const proxyState = join(home, "proxy");
    const proxyIdentity = await loadOrCreateIdentity(proxyState);
    const proxyTrust = await TrustPolicy.open({ stateDir: proxyState });
    const proxy = await ProxyNode.start({
      relay: relayAddr,
      http,
      resolve: routeResolver(directive),
      stateDir: proxyState,
      identity: proxyIdentity,
      trust: proxyTrust,
      log: log.child({ component: "proxy" }),
      announce: (line) => {
        if (!line.startsWith("sat command:")) announce(`proxy ${line}`);
      },
    });
    cleanUp.push(() => proxy.close());

    const satState = join(home, "sat");
    const ticket = await proxyTrust.issueTicket(proxyIdentity.identifier, { ttlMs: 60_000 });
    const sat = SatNode.start({
      relay: relayAddr,
      fwd: proxy.address,
      ticket,
      identity: await loadOrCreateIdentity(satState),
      trust: await TrustPolicy.open({ stateDir: satState }),
      functions: [...runnables.keys()],
      runner: wasmRunner(runnables),
      log: log.child({ component: "sat" }),
    });
    cleanUp.push(() => sat.close());
    const deadline = Date.now() + 10_000;
    while (proxy.sats.size === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    if (proxy.sats.size === 0) throw new Error("the sat did not attach within 10 s");
    announce(`sat attached, running: ${[...runnables.keys()].join(", ")}`);
    const url = `${formatHostPort({ ...http, port: proxy.httpAddr.port })}/hello`;
    announce(`\ntry:  curl -d "my friend" ${url}\n(Ctrl-C to stop)`);
  } catch (error) {
    await close();
    throw error;
  }
  return { close };
});
