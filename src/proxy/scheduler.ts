/**
 * Runs a Directive's schedules (Atmo): every `every` period, the schedule's steps run on the
 * connected sats with method `SCHED`, an empty body and the state seeded from its `state`.
 * Errors are logged; a run still going when the next one is due is not started twice.
 *
 * @module
 */

import type { Logger } from "../cli/mod.ts";
import { runSteps, type Schedule } from "../directive/mod.ts";
import type { Invoker } from "./proxy_handler.ts";
import { fnKey } from "./runnable_locator.ts";

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/**
 * The proxy's schedule runner; `replace` swaps in a reloaded Directive's schedules.
 *
 * @example
 * ```ts
 * const scheduler = new Scheduler(createInvoker({ sats }), log);
 * scheduler.replace(directive.schedules);
 * ```
 */
export class Scheduler {
  readonly #invoke: Invoker;
  readonly #log: Logger;
  #timers: ReturnType<typeof setInterval>[] = [];
  #running = new Set<string>();

  constructor(invoke: Invoker, log: Logger) {
    this.#invoke = invoke;
    this.#log = log;
  }

  /** Stops the current schedules and starts these. */
  replace(schedules: readonly Schedule[]): void {
    this.close();
    for (const schedule of schedules) {
      this.#timers.push(setInterval(() => this.#run(schedule), schedule.everySeconds * 1000));
    }
  }

  /** Stops every schedule (runs in progress finish). */
  close(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  async #run(schedule: Schedule): Promise<void> {
    if (this.#running.has(schedule.name)) {
      this.#log.warn("schedule still running; skipped this period", { schedule: schedule.name });
      return;
    }
    this.#running.add(schedule.name);
    const requestId = `sched-${schedule.name}-${Date.now().toString(36)}`;
    const initial = new Map(
      Object.entries(schedule.state).map(([key, value]) => [key, encoder.encode(value)]),
    );
    try {
      const outcome = await runSteps(
        { steps: schedule.steps, response: "" },
        (fn, state) =>
          this.#invoke(fnKey(fn), {
            fn: fnKey(fn),
            method: "SCHED",
            url: "",
            requestId,
            headers: {},
            params: {},
            ...(state.size > 0
              ? {
                state: Object.fromEntries([...state].map(([k, v]) => [k, v.toBase64()])),
              }
              : {}),
          }, EMPTY),
        initial,
      );
      if (outcome.ok) this.#log.debug("schedule ran", { schedule: schedule.name, requestId });
      else {
        this.#log.error("schedule failed", {
          schedule: schedule.name,
          requestId,
          code: outcome.code,
          error: outcome.message,
        });
      }
    } catch (error) {
      this.#log.error("schedule failed", {
        schedule: schedule.name,
        requestId,
        error: (error as Error).message,
      });
    } finally {
      this.#running.delete(schedule.name);
    }
  }
}
