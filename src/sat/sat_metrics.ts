/**
 * What a sat counts, served on its `--metrics HOST:PORT` listener: invocations by function and
 * outcome (ok, error, timeout) with latency histograms, and whether it is attached to its
 * proxy.
 *
 * @module
 */

import { type Counter, type Histogram, MetricsRegistry } from "../metrics/mod.ts";

/** The sat's metrics. */
export class SatMetrics {
  readonly registry: MetricsRegistry = new MetricsRegistry();
  /** `stratos_sat_invocations_total{fn,outcome}`. */
  readonly invocations: Counter;
  /** `stratos_sat_invocation_duration_seconds{fn}`. */
  readonly latency: Histogram;

  /** @param connected whether the sat has a channel to its proxy now */
  constructor(connected: () => boolean) {
    this.invocations = this.registry.counter(
      "stratos_sat_invocations_total",
      "Invocations run, by function and outcome (ok, error: the runnable's or a trap; " +
        "timeout: over the time limit).",
      ["fn", "outcome"],
    );
    this.latency = this.registry.histogram(
      "stratos_sat_invocation_duration_seconds",
      "Time to run one invocation, by function.",
      ["fn"],
    );
    this.registry.gauge(
      "stratos_sat_connected",
      "1 while a secure channel to the proxy is up, else 0.",
      () => connected() ? 1 : 0,
    );
  }

  /** Counts one invocation of `fn` that ended with `outcome`, after `seconds`. */
  record(fn: string, outcome: "ok" | "error" | "timeout", seconds: number): void {
    this.invocations.inc({ fn, outcome });
    this.latency.observe({ fn }, seconds);
  }
}
