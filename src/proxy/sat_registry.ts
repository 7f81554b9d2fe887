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

  /** The connected sat with fewest invocations in flight that can run `fn`, if any. */
  pick(fn: string): SatConnection | undefined {
    let best: SatConnection | undefined;
    for (const sat of this.#sats) {
      if (sat.ended || !sat.functions.has(fn)) continue;
      if (!best || sat.inFlight < best.inFlight) best = sat;
    }
    return best;
  }

  /** Closes every sat's channel. */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.#sats].map((sat) => sat.close()));
  }
}
