/**
 * The proxy's table of connected, trusted sats and the functions each can run.
 *
 * @module
 */

import type { SatConnection } from "../invocation/mod.ts";

/**
 * Connected sats. A sat leaves the table as soon as its channel ends.
 *
 * @example
 * ```ts
 * registry.add(sat);
 * const target = registry.pick("helloworld-rs"); // least busy sat that has it
 * ```
 */
export class SatRegistry {
  readonly #sats = new Set<SatConnection>();
  readonly #onChange: (() => void) | undefined;
  /** Module digests the proxy accepts per fn key; undefined: any (no deployment given). */
  #accepted: ReadonlyMap<string, ReadonlySet<string>> | undefined;

  /** @param onChange called after a sat joins or leaves */
  constructor(onChange?: () => void) {
    this.#onChange = onChange;
  }

  /** Adds a sat; it is removed when its channel closes. */
  add(sat: SatConnection): void {
    this.#sats.add(sat);
    this.#onChange?.();
    sat.closed.then(() => {
      this.#sats.delete(sat);
      this.#onChange?.();
    });
  }

  /** Number of connected sats. */
  get size(): number {
    return this.#sats.size;
  }

  /** Every connected sat. */
  all(): SatConnection[] {
    return [...this.#sats];
  }

  /**
   * Sets which module digests may serve each fn: a sat is picked for `fn` only when its copy
   * has one of them. While a deployment rolls out, both the old and the new digest are accepted.
   */
  accept(digests: ReadonlyMap<string, ReadonlySet<string>>): void {
    this.#accepted = digests;
  }

  /**
   * The healthy connected sat with fewest invocations in flight that runs `fn` with an
   * accepted module, if any, leaving out those in `exclude` (already tried).
   */
  pick(fn: string, exclude?: ReadonlySet<SatConnection>): SatConnection | undefined {
    let best: SatConnection | undefined;
    const accepted = this.#accepted?.get(fn);
    for (const sat of this.#sats) {
      if (!sat.healthy || exclude?.has(sat)) continue;
      const digest = sat.functions.get(fn);
      if (digest === undefined || (this.#accepted && !accepted?.has(digest))) continue;
      if (!best || sat.inFlight < best.inFlight) best = sat;
    }
    return best;
  }

  /**
   * Whether an invocation of `fn` may go to a sat whose module reads the request (or to none
   * yet): false only when every connected sat that runs `fn` said its module never does, so
   * that the request's headers need not even be collected.
   */
  readsRequest(fn: string): boolean {
    let runs = false;
    for (const sat of this.#sats) {
      if (!sat.functions.has(fn)) continue;
      if (sat.readsRequest(fn)) return true;
      runs = true;
    }
    return !runs;
  }

  /** Closes every sat's channel. */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.#sats].map((sat) => sat.close()));
  }
}
