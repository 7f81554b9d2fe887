/**
 * `deno task ticket`: issues a one-time enrollment ticket from a proxy's state folder, running
 * or stopped (the proxy re-reads its trust file when a sat presents a ticket), and prints the
 * command that attaches a sat with it.
 *
 * @module
 */

import { join } from "node:path";
import { loadIdentity, readStateFile, stateDirPath, TrustPolicy } from "./channel/mod.ts";
import {
  announce,
  type CommandSpec,
  COMMON_FLAGS,
  formatHostPort,
  parseHostPort,
  runService,
  UsageError,
} from "./cli/mod.ts";
import { ADDRESS_FILE_NAME, DEFAULT_RELAY } from "./proxy/mod.ts";

const COMMAND: CommandSpec = {
  usage: "deno task ticket [--ttl MINUTES] [--relay HOST:PORT]",
  summary: "Issues a one-time enrollment ticket for a new sat from the proxy's state folder\n" +
    "($STRATOS_HOME/proxy, default ~/.stratos/proxy) and prints the `sat command:` line\n" +
    "that attaches it. The proxy need not be stopped.",
  flags: [
    {
      name: "ttl",
      type: "string",
      default: "60",
      valueName: "MINUTES",
      description: "how long the ticket stays valid",
    },
    {
      name: "relay",
      type: "string",
      default: DEFAULT_RELAY,
      env: "STRATOS_RELAY",
      valueName: "HOST:PORT",
      description: "the relay the sat dials (printed in the command when not the default)",
    },
    ...COMMON_FLAGS,
  ],
};

await runService("ticket", COMMAND, async (flags) => {
  const minutes = Number(flags.ttl);
  if (!Number.isSafeInteger(minutes) || minutes < 1 || minutes > 7 * 24 * 60) {
    throw new UsageError(`--ttl "${flags.ttl}": expected whole minutes, 1 to 10080 (a week)`);
  }
  const relay = formatHostPort(parseHostPort(flags.relay as string, "relay"));
  const dir = stateDirPath("proxy");
  const identity = await loadIdentity(dir);
  const saved = await readStateFile(join(dir, ADDRESS_FILE_NAME)) as
    | { address?: string }
    | undefined;
  if (!identity || !saved?.address) {
    throw new Error(
      `no proxy state in ${dir}: start the proxy once (deno task proxy) so that it has an ` +
        "identity and a forwarding address",
    );
  }
  const trust = await TrustPolicy.open({ stateDir: dir });
  const ticket = await trust.issueTicket(identity.identifier, { ttlMs: minutes * 60_000 });
  const relayFlag = relay === DEFAULT_RELAY ? "" : ` --relay ${relay}`;
  announce(`sat command: deno task sat --fwd ${saved.address}${relayFlag} --ticket ${ticket}`);
  return { close: async () => {}, ended: Promise.resolve(0) };
});
