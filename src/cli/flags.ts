/**
 * Command-line flags for the services: one table per command gives each flag its type,
 * default, environment variable and help text; `--help` prints them all.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** One flag of a command. */
export interface FlagSpec {
  /** Long name without dashes, e.g. "relay". */
  readonly name: string;
  /** "string" flags take a value, "boolean" flags do not. */
  readonly type: "string" | "boolean";
  /** What the flag does, for --help. */
  readonly description: string;
  /** Default value as text (string flags). */
  readonly default?: string;
  /** Environment variable that supplies the value when the flag is not given. */
  readonly env?: string;
  /** Placeholder in --help, e.g. "HOST:PORT". */
  readonly valueName?: string;
}

/** A command's flags and summary. */
export interface CommandSpec {
  /** How the command is run, e.g. "deno task relay". */
  readonly usage: string;
  /** A few lines on what it does. */
  readonly summary: string;
  readonly flags: readonly FlagSpec[];
  /** One optional positional argument, stored under its name, e.g. "module". */
  readonly positional?: { readonly name: string; readonly description: string };
}

/** The command line is wrong; the message says what and how to fix it. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Parsed flag values: strings (with defaults applied) and booleans. */
export type FlagValues = Readonly<Record<string, string | boolean | undefined>>;

/** The --help text of a command. */
export function helpText(command: CommandSpec): string {
  const help: FlagSpec = { name: "help", type: "boolean", description: "show this help" };
  const rows = [...command.flags, help]
    .map((f) => {
      const left = `  --${f.name}${f.type === "string" ? ` ${f.valueName ?? "VALUE"}` : ""}`;
      const notes = [
        f.default !== undefined ? `default: ${f.default}` : undefined,
        f.env ? `env: ${f.env}` : undefined,
      ].filter(Boolean).join("; ");
      return `${left.padEnd(30)} ${f.description}${notes ? ` (${notes})` : ""}`;
    });
  const positional = command.positional
    ? `\n\narguments:\n  ${
      command.positional.name.toUpperCase().padEnd(28)
    } ${command.positional.description}`
    : "";
  return `usage: ${command.usage}\n\n${command.summary}${positional}\n\nflags:\n${rows.join("\n")}`;
}

/**
 * Parses `args` against the command's flags. Environment variables fill flags not given
 * (read only where permission allows), then values from a config file (`fromFile`, see
 * config_file.ts); defaults fill the rest.
 *
 * @returns the values, or "help" when --help was asked for
 * @throws UsageError on an unknown flag, a missing value, or a stray argument
 */
export function parseFlags(
  args: readonly string[],
  command: CommandSpec,
  env: (name: string) => string | undefined = readEnv,
  fromFile: Readonly<Record<string, string | boolean>> = {},
): FlagValues | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(command.flags.map((f) => [f.name, { type: f.type }])),
      },
      allowPositionals: command.positional !== undefined,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\nrun with --help to see every flag`);
  }
  if (parsed.values.help) return "help";
  const values: Record<string, string | boolean | undefined> = {};
  if (command.positional) {
    if (parsed.positionals.length > 1) {
      throw new UsageError(
        `unexpected argument "${
          parsed.positionals[1]
        }": give at most one ${command.positional.name}`,
      );
    }
    values[command.positional.name] = parsed.positionals[0];
  }
  for (const flag of command.flags) {
    const given = parsed.values[flag.name as keyof typeof parsed.values];
    const fromEnv = flag.env ? env(flag.env) : undefined;
    if (given !== undefined) values[flag.name] = given as string | boolean;
    else if (fromEnv !== undefined && fromEnv !== "") {
      values[flag.name] = flag.type === "boolean" ? /^(1|true|yes)$/i.test(fromEnv) : fromEnv;
    } else if (fromFile[flag.name] !== undefined) values[flag.name] = fromFile[flag.name];
    else values[flag.name] = flag.type === "boolean" ? false : flag.default;
  }
  return values;
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env for it: the flag's default applies
  }
}

/**
 * A flag's value as a positive whole number.
 *
 * @throws UsageError naming the flag and the value
 */
export function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`--${flag} "${text}": expected a positive whole number`);
  }
  return value;
}

/** A listening or dialing address. */
export interface HostPort {
  readonly hostname: string;
  readonly port: number;
}

/**
 * Parses `HOST:PORT` (IPv6 as `[::1]:PORT`; `:PORT` means all interfaces).
 *
 * @throws UsageError naming the flag and the value
 */
export function parseHostPort(text: string, flag: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new UsageError(
      `--${flag} "${text}": expected HOST:PORT, e.g. 127.0.0.1:4000 (port 0 picks a free port)`,
    );
  }
  return { hostname: match[1] ?? (match[2] || "0.0.0.0"), port };
}

/** HOST:PORT text of an address, bracketing IPv6. */
export function formatHostPort(address: HostPort): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}
