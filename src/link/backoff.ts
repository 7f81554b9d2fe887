/**
 * Reconnection delays: exponential backoff with full jitter.
 *
 * @module
 */

/** Options of Backoff. */
export interface BackoffOptions {
  /** First delay ceiling; default 100 ms. */
  readonly initialMs?: number;
  /** Largest delay ceiling; default 5 s. */
  readonly maxMs?: number;
  /** Random source in [0, 1); default Math.random. */
  readonly random?: () => number;
}

/**
 * Delays that grow 2x per failure up to a ceiling, each drawn uniformly below the current
 * ceiling so that many nodes reconnecting at once spread out.
 *
 * @example
 * ```ts
 * const backoff = new Backoff();
 * await backoff.wait(signal); // after a failure
 * backoff.reset();            // after a success
 * ```
 */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #random: () => number;
  #ceiling: number;

  constructor(options: BackoffOptions = {}) {
    this.#initial = options.initialMs ?? 100;
    this.#max = options.maxMs ?? 5_000;
    this.#random = options.random ?? Math.random;
    this.#ceiling = this.#initial;
  }

  /** The next delay in ms; the ceiling doubles. */
  next(): number {
    const delay = this.#random() * this.#ceiling;
    this.#ceiling = Math.min(this.#max, this.#ceiling * 2);
    return delay;
  }

  /** Back to the initial ceiling. */
  reset(): void {
    this.#ceiling = this.#initial;
  }

  /** Waits the next delay, or until `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, this.next());
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}
