/**
 * A Stratos network for the end-to-end benchmarks: relay, proxy (with the repository's
 * Directive.yaml) and one enrolled sat, each a process started with its deno task's flags, on
 * loopback ports the system picks, logging only warnings.
 *
 * @module
 */

import { join } from "node:path";
import { ROOT, Service } from "../tests/_services.ts";

/** A started network. */
export interface StratosNetwork {
  readonly relay: Service;
  readonly relayPort: number;
  readonly proxy: Service;
  /** The proxy's forwarding address. */
  readonly fwd: string;
  /** The first `sat command: ` line the proxy printed. */
  readonly satCommand: string;
  readonly sat: Service;
  /** `POST` here answers `hello, <body>` through the whole path. */
  readonly url: string;
}

const LISTENING = /^listening on 127\.0\.0\.1:(\d+)$/;

/**
 * Starts relay, proxy and sat from the tree at `root` (default this repository), with their
 * state under `home`; each is pushed onto `services` as it starts (stop them from there).
 * Resolves once the proxy answers through the sat.
 */
export async function startStratos(
  services: Service[],
  home: string,
  root: string = ROOT,
): Promise<StratosNetwork> {
  const start = (task: string, args: string[]) => {
    const service = Service.start(task, [...args, "--log-level", "warn"], {
      STRATOS_HOME: join(home, task),
    }, root);
    services.push(service);
    return service;
  };
  const relay = start("relay", ["--listen", "127.0.0.1:0"]);
  const relayPort = Number((await relay.line(LISTENING))[1]);
  const proxy = start("proxy", ["--relay", `127.0.0.1:${relayPort}`, "--http", "127.0.0.1:0"]);
  const httpPort = Number((await proxy.line(LISTENING))[1]);
  const fwd = (await proxy.line(/^(FWD_[0-9a-f]{16})$/))[1]!;
  const satCommand = (await proxy.line(/^sat command: (.*)$/))[1]!;
  const ticket = /--ticket (\S+)/.exec(satCommand)![1]!;
  const sat = start("sat", ["--fwd", fwd, "--relay", `127.0.0.1:${relayPort}`, "--ticket", ticket]);
  const url = `http://127.0.0.1:${httpPort}/hello`;
  for (let tries = 0;; tries++) {
    const response = await fetch(url, { method: "POST", body: "my friend" });
    await response.body?.cancel();
    if (response.status === 200) break;
    if (tries === 200) {
      throw new Error(`the network at ${root} does not answer: ${response.status}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { relay, relayPort, proxy, fwd, satCommand, sat, url };
}
