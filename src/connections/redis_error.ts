/**
 * A Redis error reply (`-WRONGTYPE ...`, `-NOAUTH ...`) raised as an exception.
 *
 * @module
 */

/**
 * The server refused a command. `prefix` is the reply's first word (`ERR`, `WRONGTYPE`,
 * `NOAUTH`, `WRONGPASS`, ...).
 *
 * @example
 * ```ts
 * try { await redis.command(["INCR", "name"]); }
 * catch (e) { if (e instanceof RedisError && e.prefix === "WRONGTYPE") { ... } }
 * ```
 */
export class RedisError extends Error {
  /** The error's first word, e.g. `WRONGTYPE`. */
  readonly prefix: string;

  constructor(reply: string, options?: ErrorOptions) {
    super(`Redis: ${reply}`, options);
    this.name = "RedisError";
    this.prefix = /^[A-Z]+/.exec(reply)?.[0] ?? "ERR";
  }
}
