/**
 * What the sat records of each invocation, timed once: one log line carrying the request id
 * the proxy gave it (the client's `X-Request-Id`, or one the proxy made), so that a request
 * can be followed from proxy to sat (the relay in between sees only ciphertext and cannot log
 * it), and its count and latency in the sat's metrics.
 *
 * @module
 */

import type { Logger } from "../cli/mod.ts";
import type { InvocationRunner, RunOutcome } from "../invocation/mod.ts";
import type { SatMetrics } from "./sat_metrics.ts";

/**
 * `runner`, each invocation logged (debug when it succeeds, warn when it fails or throws) and,
 * with `metrics`, counted by outcome and timed. One wrapper and one clock reading at each end,
 * where a logging and a metrics wrapper took two of each on every invocation.
 */
export function observedRunner(
  runner: InvocationRunner,
  log: Logger,
  metrics?: SatMetrics,
): InvocationRunner {
  return async (header, body, cancellation) => {
    const started = performance.now();
    let outcome: RunOutcome;
    try {
      outcome = await runner(header, body, cancellation);
    } catch (error) {
      const seconds = (performance.now() - started) / 1000;
      metrics?.record(header.fn, "error", seconds);
      log.warn("invocation failed", {
        requestId: header.requestId,
        fn: header.fn,
        ms: Math.round(seconds * 100_000) / 100,
        error: (error as Error).message,
      });
      throw error;
    }
    const seconds = (performance.now() - started) / 1000;
    metrics?.record(
      header.fn,
      outcome.ok ? "ok" : outcome.code === 504 ? "timeout" : "error",
      seconds,
    );
    if (outcome.ok && !log.debugEnabled) return outcome;
    const fields = {
      requestId: header.requestId,
      fn: header.fn,
      ms: Math.round(seconds * 100_000) / 100,
    };
    if (outcome.ok) log.debug("invocation", fields);
    else log.warn("invocation failed", { ...fields, code: outcome.code, error: outcome.message });
    return outcome;
  };
}
