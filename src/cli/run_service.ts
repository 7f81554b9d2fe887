/**
 * The life cycle every service entry point shares: parse flags (or print --help), start,
 * stop cleanly on SIGINT/SIGTERM, and exit with a status that says what happened.
 *
 * @module
 */

import { resolve } from "node:path";
import { readConfigFile } from "./config_file.ts";
import { type CommandSpec, type FlagValues, helpText, parseFlags, UsageError } from "./flags.ts";
import { createLogger, LOG_LEVELS, type LogFormat, type Logger, type LogLevel } from "./logger.ts";

/** Flags every service has. */
export const COMMON_FLAGS: CommandSpec["flags"] = [
  {
    name: "log-level",
    type: "string",
    default: "info",
    env: "STRATOS_LOG_LEVEL",
    valueName: "LEVEL",
    description: "error, warn, info or debug",
  },
  {
    name: "config",
    type: "string",
    env: "STRATOS_CONFIG",
    valueName: "FILE",
    description: "flag values from a YAML or JSON file (keys are flag names; the command " +
      "line and environment win)",
  },
  {
    name: "log-format",
    type: "string",
    env: "STRATOS_LOG_FORMAT",
    valueName: "FORMAT",
    description: "json or pretty (default: pretty on a terminal, else json)",
  },
];

/** A started service: what stops it, and what ends it by itself. */
export interface RunningService {
  /** Stops the service (on SIGINT/SIGTERM). */
  close(): Promise<void>;
  /** Resolves with an exit status if the service ends by itself. */
  readonly ended?: Promise<number>;
}

/** Exit status for a command-line mistake. */
export const EXIT_USAGE = 2;

/**
 * Runs a service entry point and exits the process when it is done.
 *
 * @param start starts the service from parsed flags and a logger
 */
export async function runService(
  service: string,
  command: CommandSpec,
  start: (flags: FlagValues, log: Logger) => Promise<RunningService>,
): Promise<never> {
  let flags: FlagValues | "help";
  try {
    flags = parseFlags(Deno.args, command);
    if (flags !== "help" && typeof flags.config === "string") {
      const file = resolve(callerDir(), flags.config);
      flags = parseFlags(Deno.args, command, undefined, await readConfigFile(file, command));
    }
    if (flags !== "help") checkLogFlags(flags);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    Deno.stderr.writeSync(new TextEncoder().encode(`${service}: ${error.message}\n`));
    Deno.exit(EXIT_USAGE);
  }
  if (flags === "help") {
    Deno.stdout.writeSync(new TextEncoder().encode(helpText(command) + "\n"));
    Deno.exit(0);
  }
  const log = createLogger({
    service,
    level: flags["log-level"] as LogLevel,
    format: flags["log-format"] as LogFormat | undefined,
  });
  let running: RunningService;
  try {
    running = await start(flags, log);
  } catch (error) {
    // The message as it is, line by line (a Directive's problems are one `file:line:col:`
    // line each), so that a terminal and an editor's error parser both read it.
    const usage = error instanceof UsageError;
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `${service}: ${usage ? "" : "cannot start: "}${(error as Error).message}\n`,
      ),
    );
    Deno.exit(usage ? EXIT_USAGE : 1);
  }
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: Deno.Signal) => {
      log.info("stopping", { signal });
      running.close().then(() => resolve(0), (error) => {
        log.error("unclean stop", { error: (error as Error).message });
        resolve(1);
      });
    };
    Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  });
  const status = await Promise.race([stopped, running.ended ?? new Promise<number>(() => {})]);
  Deno.exit(status);
}

/** Where the user ran the task (`deno task` runs in the repository root, INIT_CWD says). */
function callerDir(): string {
  try {
    return Deno.env.get("INIT_CWD") ?? Deno.cwd();
  } catch {
    return Deno.cwd(); // no permission to read INIT_CWD
  }
}

function checkLogFlags(flags: FlagValues): void {
  const level = flags["log-level"];
  if (!LOG_LEVELS.includes(level as LogLevel)) {
    throw new UsageError(`--log-level "${level}": expected one of ${LOG_LEVELS.join(", ")}`);
  }
  const format = flags["log-format"];
  if (format !== undefined && format !== "json" && format !== "pretty") {
    throw new UsageError(`--log-format "${format}": expected json or pretty`);
  }
}
