/**
 * `deno task identity`: shows, creates and exports the identity of a node (relay, proxy or
 * sat) in its state folder, `$STRATOS_HOME/<role>` (default ~/.stratos/<role>).
 *
 * @module
 */

import { resolve } from "node:path";
import {
  IDENTITY_FILE_NAME,
  loadIdentity,
  loadOrCreateIdentity,
  type Role,
  ROLES,
  stateDirPath,
} from "./channel/mod.ts";
import { announce, type CommandSpec, COMMON_FLAGS, runService, UsageError } from "./cli/mod.ts";

const ACTIONS = ["show", "create", "export"] as const;

const COMMAND: CommandSpec = {
  usage: "deno task identity [show|create|export] --role relay|proxy|sat [--out FILE]",
  summary: "The identity of a node: an Ed25519 key in its state folder whose identifier\n" +
    "(I + SHA-256 of the public key) peers pin and allowlist.\n" +
    "  show    print the identifier (the default; nothing is created)\n" +
    "  create  create the identity if the node has none, and print the identifier\n" +
    "  export  copy the secret key file to --out FILE (mode 0600, never overwritten), to\n" +
    "          move the node to another machine: keep it secret",
  positional: { name: "action", description: "show, create or export" },
  flags: [
    {
      name: "role",
      type: "string",
      valueName: "ROLE",
      description: "relay, proxy or sat (required)",
    },
    {
      name: "out",
      type: "string",
      valueName: "FILE",
      description: "export: where to write the secret key file",
    },
    ...COMMON_FLAGS,
  ],
};

await runService("identity", COMMAND, async (flags) => {
  const action = (flags.action as string | undefined) ?? "show";
  if (!(ACTIONS as readonly string[]).includes(action)) {
    throw new UsageError(`unknown action "${action}": expected ${ACTIONS.join(", ")}`);
  }
  const role = flags.role as string | undefined;
  if (!role || !(ROLES as readonly string[]).includes(role)) {
    throw new UsageError(`--role is required: one of ${ROLES.join(", ")}`);
  }
  const dir = stateDirPath(role as Role);
  if (action === "create") {
    const existed = await loadIdentity(dir);
    const identity = existed ?? await loadOrCreateIdentity(dir);
    announce(identity.identifier);
    if (existed) announce(`(already existed in ${dir})`);
    return { close: async () => {}, ended: Promise.resolve(0) };
  }
  const identity = await loadIdentity(dir);
  if (!identity) {
    throw new Error(
      `the ${role} has no identity in ${dir} yet: start it once, or run ` +
        `deno task identity create --role ${role}`,
    );
  }
  if (action === "show") {
    announce(identity.identifier);
    return { close: async () => {}, ended: Promise.resolve(0) };
  }
  const out = flags.out as string | undefined;
  if (!out) throw new UsageError("export needs --out FILE: where to write the secret key file");
  const target = resolve(Deno.env.get("INIT_CWD") ?? Deno.cwd(), out);
  const bytes = await Deno.readFile(`${dir}/${IDENTITY_FILE_NAME}`);
  try {
    await Deno.writeFile(target, bytes, { createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new Error(`${target} exists; choose another file (an export never overwrites)`);
    }
    throw error;
  } finally {
    bytes.fill(0);
  }
  announce(identity.identifier);
  announce(
    `exported to ${target} (secret: copy it to $STRATOS_HOME/${role}/${IDENTITY_FILE_NAME} ` +
      "on the new machine, mode 0600, then delete this copy)",
  );
  return { close: async () => {}, ended: Promise.resolve(0) };
});
