/**
 * `deno task relay`: the public relay (Ockam's cloud relay, self-hosted). Nodes register
 * forwarding addresses and open links to them; the relay moves their encrypted frames and
 * never sees inside. Registrations live in $STRATOS_HOME/relay (default ~/.stratos).
 *
 * @module
 */

import { stateDirPath } from "./channel/mod.ts";
import {
  announce,
  type CommandSpec,
  COMMON_FLAGS,
  formatHostPort,
  parseHostPort,
  positiveInteger,
  runService,
} from "./cli/mod.ts";
import { serveOpsEndpoint } from "./metrics/mod.ts";
import { DEFAULT_RELAY_LIMITS, relayMetrics, RelayServer } from "./relay/mod.ts";

const COMMAND: CommandSpec = {
  usage: "deno task relay [flags]",
  summary: "The relay: proxies and sats dial out to it; it forwards their end-to-end encrypted\n" +
    "frames between forwarding addresses and links, and cannot read them.",
  flags: [
    {
      name: "listen",
      type: "string",
      default: "0.0.0.0:4000",
      env: "STRATOS_RELAY_LISTEN",
      valueName: "HOST:PORT",
      description: "where to accept nodes (port 0 picks a free port)",
    },
    {
      name: "max-connections",
      type: "string",
      default: String(DEFAULT_RELAY_LIMITS.maxConnections),
      env: "STRATOS_RELAY_MAX_CONNECTIONS",
      valueName: "N",
      description: "node connections served at once; more are refused",
    },
    {
      name: "max-connections-per-ip",
      type: "string",
      default: String(DEFAULT_RELAY_LIMITS.maxConnectionsPerIp),
      env: "STRATOS_RELAY_MAX_CONNECTIONS_PER_IP",
      valueName: "N",
      description: "connections from one IP address at once; more from it are refused",
    },
    {
      name: "max-links",
      type: "string",
      default: String(DEFAULT_RELAY_LIMITS.maxLinksPerConnection),
      env: "STRATOS_RELAY_MAX_LINKS",
      valueName: "N",
      description: "links open at once on one connection (a proxy has one per sat)",
    },
    {
      name: "metrics",
      type: "string",
      env: "STRATOS_METRICS",
      valueName: "HOST:PORT",
      description: "serve /metrics, /health and /ready there (default: not served)",
    },
    ...COMMON_FLAGS,
  ],
};

await runService("relay", COMMAND, async (flags, log) => {
  const listen = parseHostPort(flags.listen as string, "listen");
  const relay = await RelayServer.start({
    hostname: listen.hostname,
    port: listen.port,
    stateDir: stateDirPath("relay"),
    log: (level, message, fields) => log[level](message, fields),
    limits: {
      maxConnections: positiveInteger(flags["max-connections"] as string, "max-connections"),
      maxConnectionsPerIp: positiveInteger(
        flags["max-connections-per-ip"] as string,
        "max-connections-per-ip",
      ),
      maxLinksPerConnection: positiveInteger(flags["max-links"] as string, "max-links"),
    },
  });
  announce(`listening on ${formatHostPort({ hostname: listen.hostname, port: relay.addr.port })}`);
  const ops = flags.metrics === undefined ? undefined : serveOpsEndpoint(
    parseHostPort(flags.metrics as string, "metrics"),
    { metrics: relayMetrics(relay), notReady: () => undefined },
  );
  if (ops) announce(`metrics listening on ${formatHostPort(ops.addr)}`);
  return {
    close: async () => {
      await ops?.shutdown();
      await relay.close();
    },
  };
});
