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
import { loadDeployment, ProxyNode, routeResolver } from "./proxy/mod.ts";
import { RelayServer } from "./relay/mod.ts";
import { DeployedRunnables, hostServicesFrom, SatNode } from "./sat/mod.ts";

const COMMAND: CommandSpec = {
  usage: "deno task demo [flags]",
  summary: "Runs the whole reference design on this machine: a relay, a proxy serving\n" +
    "Directive.yaml, and a sat running the runnables the proxy delivers to it, all on\n" +
    "loopback, in one process.\n" +
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
      valueName: "DIR",
      description: "where the proxy finds runnables (default: beside the Directive)",
    },
    ...COMMON_FLAGS.map((f) => f.name === "log-level" ? { ...f, default: "warn" } : f),
  ],
};

await runService("demo", COMMAND, async (flags, log) => {
  const http = parseHostPort(flags.http as string, "http");
  const base = Deno.env.get("INIT_CWD") ?? Deno.cwd();
  const runnablesDir = flags.runnables as string | undefined;
  const deployment = await loadDeployment(resolve(base, flags.directive as string), {
    runnablesDir: runnablesDir === undefined ? undefined : resolve(base, runnablesDir),
  });
  const home = await Deno.makeTempDir({ prefix: "stratos-demo-" });
  const cleanUp: (() => Promise<void>)[] = [() => Deno.remove(home, { recursive: true })];
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
      resolve: routeResolver(deployment.directive),
      deployment,
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
    const delivery = await DeployedRunnables.open({
      cacheDir: join(satState, "runnables"),
      services: hostServicesFrom,
      runnable: {
        log: (level, message, fields) => log[level](message, fields),
        workerPermissions: "none",
      },
    });
    cleanUp.push(() => delivery.close());
    const ticket = await proxyTrust.issueTicket(proxyIdentity.identifier, { ttlMs: 60_000 });
    const sat = SatNode.start({
      relay: relayAddr,
      fwd: proxy.address,
      ticket,
      identity: await loadOrCreateIdentity(satState),
      trust: await TrustPolicy.open({ stateDir: satState }),
      functions: [],
      runner: delivery.runner,
      delivery,
      log: log.child({ component: "sat" }),
    });
    cleanUp.push(() => sat.close());
    const wanted = Object.keys(deployment.manifest.runnables);
    const ready = () => proxy.sats.all().some((s) => wanted.every((fn) => s.functions.has(fn)));
    const deadline = Date.now() + 10_000;
    while (!ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (!ready()) throw new Error("the sat did not attach and load the runnables within 10 s");
    announce(`sat attached, running: ${wanted.join(", ")}`);
    const url = `${formatHostPort({ ...http, port: proxy.httpAddr.port })}/hello`;
    announce(`\ntry:  curl -d "my friend" ${url}\n(Ctrl-C to stop)`);
  } catch (error) {
    await close();
    throw error;
  }
  return { close };
});
