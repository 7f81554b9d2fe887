/**
 * One log line per invocation on the sat, carrying the request id the proxy gave it (the
 * client's `X-Request-Id`, or one the proxy made), so that a request can be followed from
 * proxy to sat. The relay in between sees only ciphertext and cannot log it.
 *
 * @module
 */

import type { Logger } from "../cli/mod.ts";
import type { InvocationRunner } from "../invocation/mod.ts";

/** `runner`, logging each invocation: debug when it succeeds, warn when it fails. */
export function loggedRunner(runner: InvocationRunner, log: Logger): InvocationRunner {
  return async (header, body, signal) => {
    const started = performance.now();
    const outcome = await runner(header, body, signal);
    const fields = {
      requestId: header.requestId,
      fn: header.fn,
      ms: Math.round((performance.now() - started) * 100) / 100,
    };
    if (outcome.ok) log.debug("invocation", fields);
    else log.warn("invocation failed", { ...fields, code: outcome.code, error: outcome.message });
    return outcome;
  };
}
