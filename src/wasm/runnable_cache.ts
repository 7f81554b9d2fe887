/**
 * The in-memory cache behind `env.cache_set` / `env.cache_get` of Suborbital's runnable ABI
 * (Reactr's in-memory cache): keys are strings, values bytes, each with an optional time to
 * live: the default {@linkcode CacheBackend} of a {@linkcode RunnablePool}, kept on the main
 * thread, which its workers reach through their shared channel (_job_channel.ts), so every job
 * of every worker sees the same entries. Pools may share one by passing it as their `cache`
 * option.
 *
 * @module
 */

import type { CacheBackend } from "./host_services.ts";

/** Most entries a cache holds unless told otherwise. */
export const DEFAULT_CACHE_MAX_ENTRIES = 4096;
/** Most bytes of keys and values a cache holds unless told otherwise: 16 MiB. */
export const DEFAULT_CACHE_MAX_BYTES = 16 * 1024 * 1024;

/** Options of {@linkcode RunnableCache}. */
export interface RunnableCacheOptions {
  /** Most entries; setting one more evicts the oldest (default {@linkcode DEFAULT_CACHE_MAX_ENTRIES}). */
  maxEntries?: number;
  /**
   * Most bytes of keys (as UTF-16 code units) and values; setting past it evicts the oldest
   * entries (default {@linkcode DEFAULT_CACHE_MAX_BYTES}).
   */
  maxBytes?: number;
  /** The clock TTLs are measured with, in ms (default `Date.now`). */
  now?: () => number;
}

interface Entry {
  value: Uint8Array;
  /** When the entry expires (ms of `now`); Infinity if never. */
  expires: number;
}

/**
 * A bounded key-value cache with a time to live per entry. "Oldest" is the entry set longest
 * ago: setting a key again makes it the newest.
 *
 * @example
 * ```ts
 * const cache = new RunnableCache({ maxEntries: 100 });
 * cache.set("greeting", new TextEncoder().encode("hi"), 60);
 * cache.get("greeting"); // the bytes of "hi", for 60 s
 * using pool = new RunnablePool({ cache });
 * ```
 */
export class RunnableCache implements CacheBackend {
  /** Most entries. */
  readonly maxEntries: number;
  /** Most bytes of keys and values. */
  readonly maxBytes: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  /**
   * Makes an empty cache.
   *
   * @param options bounds and clock
   * @throws {RangeError} `maxEntries` or `maxBytes` is not a positive integer
   */
  constructor(options: RunnableCacheOptions = {}) {
    const maxEntries = options.maxEntries ?? DEFAULT_CACHE_MAX_ENTRIES;
    const maxBytes = options.maxBytes ?? DEFAULT_CACHE_MAX_BYTES;
    for (const [name, value] of [["maxEntries", maxEntries], ["maxBytes", maxBytes]] as const) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
      }
    }
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
    this.#now = options.now ?? Date.now;
  }

  /** Entries held, expired ones not yet removed included. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The value of `key`, unless it is missing or expired.
   *
   * @param key the entry's key
   * @returns the value (the cache's own bytes: do not change them), or undefined
   */
  get(key: string): Uint8Array | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= this.#now()) {
      this.#delete(key, entry);
      return undefined;
    }
    return entry.value;
  }

  /**
   * Sets `key` to a copy of `value`, evicting expired entries then the oldest ones to stay
   * within the bounds.
   *
   * @param key the entry's key
   * @param value its value
   * @param ttlSeconds seconds until it expires; 0 or less: never (as Reactr's cache)
   * @throws {RangeError} the entry alone is larger than `maxBytes` (nothing is stored)
   */
  set(key: string, value: Uint8Array, ttlSeconds: number): void {
    const size = key.length + value.length;
    if (size > this.maxBytes) {
      throw new RangeError(
        `the entry of ${size} bytes is larger than the cache (maxBytes ${this.maxBytes})`,
      );
    }
    const old = this.#entries.get(key);
    if (old) this.#delete(key, old);
    if (this.#entries.size >= this.maxEntries || this.#bytes + size > this.maxBytes) {
      this.#sweep();
    }
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size < this.maxEntries && this.#bytes + size <= this.maxBytes) break;
      this.#delete(oldest, entry);
    }
    const expires = ttlSeconds > 0 ? this.#now() + ttlSeconds * 1000 : Infinity;
    this.#entries.set(key, { value: value.slice(), expires });
    this.#bytes += size;
  }

  /** Removes every entry. */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** Removes the expired entries. */
  #sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) if (entry.expires <= now) this.#delete(key, entry);
  }

  #delete(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= key.length + entry.value.length;
  }
}
