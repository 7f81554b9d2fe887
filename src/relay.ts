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
  runService,
} from "./cli/mod.ts";
import { RelayServer } from "./relay/mod.ts";

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
  });
  announce(`listening on ${formatHostPort({ hostname: listen.hostname, port: relay.addr.port })}`);
  return { close: () => relay.close() };
});
