/**
 * `deno task sat --fwd FWD_x`: the edge. Dials the relay (it opens no port), attaches to a
 * proxy's forwarding address over a secure channel, and runs its Wasm runnables for it.
 *
 * @module
 */

import { basename, join, resolve } from "node:path";
import { loadOrCreateIdentity, parseTicket, stateDirPath, TrustPolicy } from "./channel/mod.ts";
import {
  announce,
  type CommandSpec,
  COMMON_FLAGS,
  type FlagValues,
  formatHostPort,
  type Logger,
  parseHostPort,
  positiveInteger,
  runService,
  UsageError,
} from "./cli/mod.ts";
import { FORWARDING_ADDRESS_PATTERN } from "./link/mod.ts";
import { serveOpsEndpoint } from "./metrics/mod.ts";
import {
  createStandaloneHandler,
  DeployedRunnables,
  hostServicesFrom,
  observedRunner,
  requestlessFunctions,
  runnableDigests,
  SatMetrics,
  SatNode,
  wasmRunner,
} from "./sat/mod.ts";
import {
  loadRunnables,
  Runnable,
  type RunnableLogFields,
  type RunnableLogLevel,
  StaticDir,
} from "./wasm/mod.ts";
import { allocBytes } from "./wire/mod.ts";

/** Exit status when trust is refused on either side: retrying would not help. */
const EXIT_TRUST_REFUSED = 2;

const COMMAND: CommandSpec = {
  usage:
    "deno task sat --fwd FWD_x [flags]\n       deno task sat FILE.wasm [--http HOST:PORT]   (standalone)",
  summary: "The edge: dials the relay, attaches to the proxy at a forwarding address over an\n" +
    "end-to-end encrypted channel, and runs its WebAssembly runnables for it. The first run\n" +
    "needs the ticket the proxy printed; later runs reconnect with --fwd alone.\n" +
    "Keys and trust live in $STRATOS_HOME/sat (default ~/.stratos).\n" +
    "Standalone, like Suborbital's Sat: given FILE.wasm, it serves that one runnable over\n" +
    "HTTP without relay or proxy: any method and path runs it on the request body.",
  positional: { name: "module", description: "standalone mode: the runnable to serve over HTTP" },
  flags: [
    {
      name: "fwd",
      type: "string",
      env: "FORWARDING_ADDRESS",
      valueName: "FWD_x",
      description: "the proxy's forwarding address (required)",
    },
    {
      name: "relay",
      type: "string",
      default: "127.0.0.1:4000",
      env: "STRATOS_RELAY",
      valueName: "HOST:PORT",
      description: "the relay to dial",
    },
    {
      name: "ticket",
      type: "string",
      env: "STRATOS_TICKET",
      valueName: "TICKET",
      description: "one-time enrollment ticket from the proxy's `sat command:` line",
    },
    {
      name: "runnables",
      type: "string",
      env: "STRATOS_RUNNABLES",
      valueName: "DIR",
      description: "run only these runnables (DIR/NAME/NAME.wasm or DIR/NAME.wasm), announced " +
        "with their SHA-256; the proxy routes an fn here only when its copy matches. Default: " +
        "run what the proxy delivers (cached in the state folder)",
    },
    {
      name: "workers",
      type: "string",
      env: "STRATOS_WORKERS",
      valueName: "N",
      description: "Wasm workers running invocations in parallel (default: the number of cores)",
    },
    {
      name: "time-limit",
      type: "string",
      default: "10000",
      env: "STRATOS_TIME_LIMIT",
      valueName: "MS",
      description: "wall-clock limit per invocation; over it the caller gets 504",
    },
    {
      name: "memory-limit",
      type: "string",
      default: "64",
      env: "STRATOS_MEMORY_LIMIT",
      valueName: "MIB",
      description: "memory cap per runnable instance; growing past it fails the invocation",
    },
    {
      name: "max-body",
      type: "string",
      default: "64",
      env: "STRATOS_MAX_BODY",
      valueName: "MIB",
      description: "largest request body an invocation takes; a larger one fails with 413",
    },
    {
      name: "max-output",
      type: "string",
      default: "16",
      env: "STRATOS_MAX_OUTPUT",
      valueName: "MIB",
      description: "largest output an invocation may return; a larger one fails with 500",
    },
    {
      name: "allow-hosts",
      type: "string",
      env: "STRATOS_ALLOW_HOSTS",
      valueName: "LIST",
      description: "hosts runnables may fetch from, comma-separated (host, host:port, " +
        "*.domain); none by default, and loopback/private addresses only when named exactly",
    },
    {
      name: "static",
      type: "string",
      env: "STRATOS_STATIC",
      valueName: "DIR",
      description: "folder of the files runnables read with get_static_file (default: none; " +
        "they get an error saying so)",
    },
    {
      name: "metrics",
      type: "string",
      env: "STRATOS_METRICS",
      valueName: "HOST:PORT",
      description: "serve /metrics, /health and /ready there (default: not served; " +
        "ready = attached to the proxy)",
    },
    {
      name: "http",
      type: "string",
      valueName: "HOST:PORT",
      description: "standalone mode: where to serve HTTP (default: 0.0.0.0:$SAT_HTTP_PORT, " +
        "else 0.0.0.0:8080)",
    },
    ...COMMON_FLAGS,
  ],
};

/** The sandbox settings every runnable of this sat is loaded with, from the flags. */
function sandboxOptions(flags: FlagValues) {
  const workers = flags.workers as string | undefined;
  const memoryMiB = positiveInteger(flags["memory-limit"] as string, "memory-limit");
  if (memoryMiB > 4096) throw new UsageError(`--memory-limit ${memoryMiB}: at most 4096 MiB`);
  return {
    concurrency: workers === undefined
      ? navigator.hardwareConcurrency
      : positiveInteger(workers, "workers"),
    timeoutMs: positiveInteger(flags["time-limit"] as string, "time-limit"),
    maxMemoryPages: memoryMiB * 16, // 64 KiB pages
    maxOutputBytes: positiveInteger(flags["max-output"] as string, "max-output") * 1024 * 1024,
    allowedHosts: ((flags["allow-hosts"] as string | undefined) ?? "").split(",")
      .map((h) => h.trim()).filter((h) => h.length > 0),
    workerPermissions: "none" as const,
  };
}

/** The files of `--static DIR`, if given (relative to where the task was started). */
async function staticFiles(flags: FlagValues): Promise<StaticDir | undefined> {
  const dir = flags.static as string | undefined;
  if (dir === undefined) return undefined;
  try {
    return await StaticDir.open(resolve(Deno.env.get("INIT_CWD") ?? Deno.cwd(), dir));
  } catch (error) {
    throw new UsageError(`--static: ${(error as Error).message}`);
  }
}

/** Standalone mode: one runnable over HTTP, no relay, no proxy. */
async function startStandalone(path: string, flags: FlagValues, log: Logger) {
  const envPort = Deno.env.get("SAT_HTTP_PORT");
  const http = parseHostPort(
    (flags.http as string | undefined) ?? `0.0.0.0:${envPort || "8080"}`,
    flags.http === undefined ? "http (from SAT_HTTP_PORT)" : "http",
  );
  const base = Deno.env.get("INIT_CWD") ?? Deno.cwd();
  const file = resolve(base, path);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  const runnable = await Runnable.load(basename(file).replace(/\.wasm$/, ""), bytes, {
    log: (level, message, fields) => log[level](message, fields),
    ...sandboxOptions(flags),
    staticFiles: await staticFiles(flags),
  }).catch((error) => {
    throw new Error(`${file}: ${(error as Error).message}`, { cause: error });
  });
  const server = Deno.serve({
    hostname: http.hostname,
    port: http.port,
    onListen: () => {},
  }, createStandaloneHandler(runnable));
  announce(`listening on ${formatHostPort({ hostname: http.hostname, port: server.addr.port })}`);
  log.info("serving one runnable", { runnable: runnable.name, file });
  return {
    close: async () => {
      await server.shutdown();
      runnable.close();
    },
  };
}

await runService("sat", COMMAND, async (flags, log) => {
  if (flags.module !== undefined) return await startStandalone(flags.module as string, flags, log);
  if (flags.http !== undefined) {
    throw new UsageError(
      "--http is for standalone mode: give the runnable, e.g. sat FILE.wasm --http :8080",
    );
  }
  const fwd = flags.fwd as string | undefined;
  if (!fwd || !FORWARDING_ADDRESS_PATTERN.test(fwd)) {
    throw new UsageError(
      fwd
        ? `--fwd "${fwd}": expected FWD_ and 16 hex digits, as the proxy printed it`
        : "--fwd is required: the forwarding address the proxy printed (FWD_...)",
    );
  }
  const relay = parseHostPort(flags.relay as string, "relay");
  const ticket = flags.ticket as string | undefined;
  if (ticket !== undefined) {
    try {
      parseTicket(ticket);
    } catch (error) {
      throw new UsageError(`--ticket: ${(error as Error).message}`);
    }
  }
  const base = Deno.env.get("INIT_CWD") ?? Deno.cwd();
  const stateDir = stateDirPath("sat");
  const runnableOptions = {
    log: (level: RunnableLogLevel, message: string, fields: RunnableLogFields) =>
      log[level](message, fields),
    ...sandboxOptions(flags),
    staticFiles: await staticFiles(flags),
    // Each output is copied on into a RESULT at once: it need not own a buffer.
    allocOutput: allocBytes,
  };
  const pinnedDir = flags.runnables as string | undefined;
  // With --runnables the edge runs only its own copies; else what the trusted proxy delivers.
  const runnables = pinnedDir === undefined
    ? undefined
    : await loadRunnables(resolve(base, pinnedDir), runnableOptions);
  const delivery = runnables ? undefined : await DeployedRunnables.open({
    cacheDir: join(stateDir, "runnables"),
    runnable: runnableOptions,
    services: hostServicesFrom,
  });
  const identity = await loadOrCreateIdentity(stateDir);
  const trust = await TrustPolicy.open({ stateDir });
  log.info("starting", {
    identity: identity.identifier,
    fwd,
    runnables: runnables ? [...runnables.keys()] : "delivered by the proxy",
  });
  let node: SatNode | undefined;
  const metrics = new SatMetrics(() => node?.connected ?? false);
  const opsServer = flags.metrics === undefined ? undefined : serveOpsEndpoint(
    parseHostPort(flags.metrics as string, "metrics"),
    {
      metrics: metrics.registry,
      notReady: () => node?.connected ? undefined : "not attached to the proxy",
    },
  );
  if (opsServer) announce(`metrics listening on ${formatHostPort(opsServer.addr)}`);
  const sat = node = SatNode.start({
    relay,
    fwd,
    ticket,
    identity,
    trust,
    functions: runnables ? [...runnables.keys()] : [],
    requestless: runnables ? requestlessFunctions(runnables) : undefined,
    digests: runnables ? await runnableDigests(resolve(base, pinnedDir!)) : undefined,
    maxBodyBytes: positiveInteger(flags["max-body"] as string, "max-body") * 1024 * 1024,
    runner: observedRunner(runnables ? wasmRunner(runnables) : delivery!.runner, log, metrics),
    delivery,
    log,
  });
  return {
    close: async () => {
      await opsServer?.shutdown();
      await sat.close();
      for (const runnable of runnables?.values() ?? []) runnable.close();
      await delivery?.close();
    },
    ended: sat.stopped.then((refused) => (refused ? EXIT_TRUST_REFUSED : 0)),
  };
});
