/**
 * The services outside the sandbox that a runnable's host calls reach, as interfaces: the cache
 * behind `env.cache_set` / `env.cache_get` (in memory by default, Redis when the Directive's
 * `connections.redis` says so), the database behind `env.db_exec` (PostgreSQL from
 * `connections.database` and `queries`), and the files behind `env.get_static_file`.
 *
 * A {@linkcode RunnablePool} runs jobs in workers and calls these on the main thread, so they
 * may be asynchronous: the worker waits for the answer (see _job_channel.ts). An
 * implementation throws an `Error` whose message the runnable receives as the host call's error.
 *
 * @module
 */

/** A key-value store with a time to live per entry. */
export interface CacheBackend {
  /** The value under `key`, or `undefined` when there is none (or it expired). */
  get(key: string): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /**
   * Stores `value` under `key` for `ttlSeconds` (0 or less: no expiry).
   *
   * @throws {Error} the value cannot be stored (the message tells the runnable why)
   */
  set(key: string, value: Uint8Array, ttlSeconds: number): void | Promise<void>;
}

/** A named variable a job added with `env.add_ffi_var`, in the order it was added. */
export interface QueryVariable {
  readonly name: string;
  readonly value: string;
}

/**
 * Runs the queries a Directive declares (`queries`), by name, on its `connections.database`.
 * `queryType` is the ABI's: 0 insert, 1 select, 2 update, 3 delete.
 */
export interface DatabaseBackend {
  /**
   * Runs query `name` with the job's variables; answers the result as JSON bytes.
   *
   * @throws {Error} unknown query, wrong type or variable count, or a database error
   */
  exec(
    queryType: number,
    name: string,
    variables: readonly QueryVariable[],
  ): Promise<Uint8Array>;
}

/** Read-only files a runnable reads by name (`static/` beside the Directive). */
export interface StaticFiles {
  /** The bytes of file `name` (a relative path), or `undefined` when there is none. */
  read(name: string): Uint8Array | undefined | Promise<Uint8Array | undefined>;
}
