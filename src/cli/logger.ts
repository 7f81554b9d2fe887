/**
 * Structured logs on stderr: JSON lines, or one readable line per event on a terminal.
 * Announcements a user or script reads (`listening on ...`, the forwarding address, the
 * `sat command:` line) are not logs: services print them to stdout with `announce`.
 *
 * @module
 */

/** Log levels, most severe first. */
export type LogLevel = "error" | "warn" | "info" | "debug";
/** Output formats. */
export type LogFormat = "json" | "pretty";

/** Extra structured fields of a log event: a plain object of JSON-friendly values. */
export type LogFields = object;

/** A logger. Never pass it keys or plaintext. */
export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  /** Whether debug events are written: lets a hot path skip building fields no one reads. */
  readonly debugEnabled: boolean;
  /** A logger that adds `fields` to every event. */
  child(fields: LogFields): Logger;
}

/** Options of createLogger. */
export interface LoggerOptions {
  /** The service name on every event. */
  readonly service: string;
  /** Lowest level written; default "info". */
  readonly level?: LogLevel;
  /** Default: pretty when stderr is a terminal, else JSON. */
  readonly format?: LogFormat;
  /** Where lines go; default stderr. */
  readonly write?: (line: string) => void;
  /** Clock; default Date.now. */
  readonly now?: () => number;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };
/** Every level name, for flag validation. */
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug"];

const encoder = new TextEncoder();

function stderrWrite(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function pretty(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

/**
 * A logger for one service.
 *
 * @example
 * ```ts
 * const log = createLogger({ service: "relay", level: "debug" });
 * log.info("link opened", { link: 7 });
 * ```
 */
export function createLogger(options: LoggerOptions, base: LogFields = {}): Logger {
  const threshold = RANK[options.level ?? "info"];
  const write = options.write ?? stderrWrite;
  const now = options.now ?? Date.now;
  const format = options.format ??
    (Deno.stderr.isTerminal() ? "pretty" : "json");
  const emit = (level: LogLevel, message: string, fields?: LogFields) => {
    if (RANK[level] > threshold) return;
    const all = { ...base, ...fields };
    if (format === "json") {
      // The event's own keys win over fields of the same name.
      write(JSON.stringify({
        ...all,
        time: new Date(now()).toISOString(),
        level,
        service: options.service,
        message,
      }));
    } else {
      const extra = Object.entries(all).map(([k, v]) => ` ${k}=${pretty(v)}`).join("");
      const time = new Date(now()).toISOString().slice(11, 23);
      write(`${time} ${level.toUpperCase().padEnd(5)} ${options.service}: ${message}${extra}`);
    }
  };
  return {
    error: (m, f) => emit("error", m, f),
    warn: (m, f) => emit("warn", m, f),
    info: (m, f) => emit("info", m, f),
    debug: (m, f) => emit("debug", m, f),
    debugEnabled: threshold >= RANK.debug,
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

/** A logger that drops everything (for tests and embedding). */
export const SILENT_LOGGER: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  debugEnabled: false,
  child: () => SILENT_LOGGER,
};

/** Prints an announcement line to stdout, whatever the log format or level. */
export function announce(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}
