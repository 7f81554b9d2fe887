/**
 * `deno task proxy`: Atmo-proxy. Serves HTTP by Directive.yaml, registers at the relay under a
 * forwarding address, and runs each request's functions on connected, trusted sats.
 *
 * @module
 */

import { loadOrCreateIdentity, stateDirPath, TrustPolicy } from "./channel/mod.ts";
import {
  announce,
  type CommandSpec,
  COMMON_FLAGS,
  parseHostPort,
  positiveInteger,
  runService,
} from "./cli/mod.ts";
import { type Directive, DirectiveError } from "./directive/mod.ts";
import {
  createInvoker,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_TIMEOUT_MS,
  DirectiveReloader,
  loadDeployment,
  ProxyNode,
  Scheduler,
} from "./proxy/mod.ts";
import type { Deployment } from "./proxy/mod.ts";

const COMMAND: CommandSpec = {
  usage: "deno task proxy [flags]\n       deno task proxy --check [--directive FILE]",
  summary: "Atmo-proxy: serves the routes of a Directive.yaml by running their functions on\n" +
    "sats that attach through the relay. Prints its forwarding address and the command\n" +
    "that attaches a sat. Keys and trust live in $STRATOS_HOME/proxy (default ~/.stratos).\n" +
    "Edits to the Directive apply without a restart; a broken edit is refused with its\n" +
    "problems logged, and the last good Directive keeps serving.\n" +
    "Runnables are found beside the Directive (runnables/NAME/NAME.wasm, runnables/NAME.wasm,\n" +
    "NAME/NAME.wasm) or in --runnables DIR, and delivered to the sats over the channel.",
  flags: [
    {
      name: "relay",
      type: "string",
      default: "127.0.0.1:4000",
      env: "STRATOS_RELAY",
      valueName: "HOST:PORT",
      description: "the relay to register at",
    },
    {
      name: "http",
      type: "string",
      default: "0.0.0.0:8080",
      env: "STRATOS_HTTP",
      valueName: "HOST:PORT",
      description: "where to serve HTTP (port 0 picks a free port)",
    },
    {
      name: "directive",
      type: "string",
      default: "Directive.yaml",
      env: "STRATOS_DIRECTIVE",
      valueName: "FILE",
      description: "the Directive to serve",
    },
    {
      name: "runnables",
      type: "string",
      env: "STRATOS_RUNNABLES",
      valueName: "DIR",
      description: "folder of runnables (DIR/NAME/NAME.wasm or DIR/NAME.wasm), instead of beside " +
        "the Directive",
    },
    {
      name: "check",
      type: "boolean",
      description: "validate the Directive and its runnables, print FILE: ok or the problems, " +
        "and exit (no network, no keys)",
    },
    {
      name: "max-body",
      type: "string",
      default: String(DEFAULT_MAX_BODY_BYTES),
      env: "STRATOS_MAX_BODY",
      valueName: "BYTES",
      description: "largest request body; larger ones get 413",
    },
    {
      name: "timeout",
      type: "string",
      default: String(DEFAULT_TIMEOUT_MS),
      env: "STRATOS_TIMEOUT",
      valueName: "MS",
      description: "time limit per function call; slower ones get 504",
    },
    ...COMMON_FLAGS,
  ],
};

/** `--check`: validates without network or keys; `env(NAME)` values are not read. */
async function check(file: string, runnablesDir: string | undefined) {
  const encoder = new TextEncoder();
  let status = 0;
  try {
    await loadDeployment(file, { runnablesDir, env: () => "" });
    Deno.stdout.writeSync(encoder.encode(`${file}: ok\n`));
  } catch (error) {
    if (!(error instanceof DirectiveError)) throw error;
    Deno.stderr.writeSync(encoder.encode(error.message + "\n"));
    status = 1;
  }
  return { close: async () => {}, ended: Promise.resolve(status) };
}

await runService("proxy", COMMAND, async (flags, log) => {
  const relay = parseHostPort(flags.relay as string, "relay");
  const http = parseHostPort(flags.http as string, "http");
  const maxBodyBytes = positiveInteger(flags["max-body"] as string, "max-body");
  const timeoutMs = positiveInteger(flags.timeout as string, "timeout");
  // `deno task` runs in the repository root; relative paths are relative to the caller.
  Deno.chdir(Deno.env.get("INIT_CWD") ?? Deno.cwd());
  const file = flags.directive as string;
  const runnablesDir = flags.runnables as string | undefined;
  if (flags.check) return await check(file, runnablesDir);
  let onReload: (schedules: Directive["schedules"]) => void = () => {};
  let apply: (deployment: Deployment) => Promise<void> = async () => {};
  const directive = await DirectiveReloader.start(file, {
    log,
    runnablesDir,
    apply: (deployment) => apply(deployment),
    onReload: (reloaded) => onReload(reloaded.schedules),
    onRefused: () => proxy?.metrics.reloads.inc({ result: "refused" }),
  });
  const stateDir = stateDirPath("proxy");
  const identity = await loadOrCreateIdentity(stateDir);
  const trust = await TrustPolicy.open({ stateDir });
  log.info("starting", {
    identity: identity.identifier,
    directive: directive.directive.file,
    routes: directive.directive.handlers.length,
  });
  // deno-lint-ignore prefer-const -- read by the reloader's callbacks before it is set
  let proxy: ProxyNode | undefined;
  proxy = await ProxyNode.start({
    relay,
    http,
    resolve: (method, path) => directive.resolve(method, path),
    stateDir,
    identity,
    trust,
    log,
    announce,
    maxBodyBytes,
    timeoutMs,
    deployment: directive.deployment,
  });
  apply = (deployment) => proxy.rollOut(deployment);
  const scheduler = new Scheduler(
    createInvoker({ sats: proxy.sats, timeoutMs, metrics: proxy.metrics }),
    log,
  );
  scheduler.replace(directive.directive.schedules);
  onReload = (schedules) => {
    proxy.metrics.reloads.inc({ result: "applied" });
    scheduler.replace(schedules);
  };
  return {
    close: async () => {
      scheduler.close();
      await proxy.close();
      await directive.close();
    },
  };
});
