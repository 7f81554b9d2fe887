/**
 * Deadlines that all last the same time (the proxy's invocation time limit), kept in arrival
 * order under one timer, instead of a timer per invocation (a Node-style timer costs a few
 * microseconds to arm and clear, on every request). Entries done before their deadline are
 * dropped from the front as soon as they reach it, so the queue holds about what is in flight.
 *
 * @module
 */

interface Entry {
  readonly at: number;
  fire: (() => void) | undefined;
}

/** A handle to cancel one deadline. */
export interface Deadline {
  /** The deadline no longer matters (what it guarded has ended). */
  clear(): void;
}

/** Deadlines of `ms` each, in arrival order. */
export class Deadlines {
  readonly #ms: number;
  #entries: (Entry | undefined)[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param ms how long every deadline lasts */
  constructor(ms: number) {
    this.#ms = ms;
  }

  /**
   * Calls `fire` in `ms` unless cleared first.
   *
   * @param now `performance.now()`, when the caller has just read it
   */
  add(fire: () => void, now: number = performance.now()): Deadline {
    const entry: Entry = { at: now + this.#ms, fire };
    this.#entries.push(entry);
    if (this.#timer === undefined) this.#arm();
    return {
      clear: () => {
        entry.fire = undefined;
        this.#trim();
      },
    };
  }

  /**
   * Drops finished entries from the front. An empty queue leaves the timer as it is: when it
   * fires with nothing due it is not armed again, so a burst of requests that all finish arms
   * it once, not once per burst (a timer costs about a microsecond to arm and clear).
   */
  #trim(): void {
    const entries = this.#entries;
    while (this.#head < entries.length && !entries[this.#head]!.fire) {
      entries[this.#head++] = undefined;
    }
    if (this.#head === entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > entries.length) {
      this.#entries = entries.slice(this.#head);
      this.#head = 0;
    }
  }

  #arm(): void {
    const first = this.#entries[this.#head];
    if (!first) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = performance.now();
      while (this.#head < this.#entries.length) {
        const entry = this.#entries[this.#head]!;
        if (entry.fire && entry.at > now) break;
        this.#entries[this.#head++] = undefined;
        const fire = entry.fire;
        entry.fire = undefined;
        fire?.();
      }
      this.#trim();
      if (this.#timer === undefined && this.#head < this.#entries.length) this.#arm();
    }, Math.max(0, first.at - performance.now()));
    // A timer left armed over an empty queue must not keep the process alive.
    Deno.unrefTimer(this.#timer);
  }
}
