/**
 * Runs invocations on the sat's Wasm runnables.
 *
 * @module
 */

import { bodyBytes, type InvocationRunner } from "../invocation/mod.ts";
import type { Runnable } from "../wasm/mod.ts";

/**
 * An InvocationRunner over loaded runnables: the request body is the input, the request's
 * method, URL, headers and params are readable through the runnable ABI.
 *
 * @example
 * ```ts
 * serveInvocations(channel, [...runnables.keys()], wasmRunner(runnables));
 * ```
 */
export function wasmRunner(runnables: ReadonlyMap<string, Runnable>): InvocationRunner {
  return async (header, streamed) => {
    const body = await bodyBytes(streamed);
    const runnable = runnables.get(header.fn);
    if (!runnable) {
      return { ok: false, code: 404, message: `this sat has no runnable named "${header.fn}"` };
    }
    const result = await runnable.run(body, {
      method: header.method,
      url: header.url,
      id: header.requestId,
      body,
      headers: header.headers,
      params: header.params,
      state: Object.fromEntries(
        Object.entries(header.state ?? {}).map((
          [key, value],
        ) => [key, Uint8Array.fromBase64(value)]),
      ),
    });
    if (!result.ok) return { ok: false, code: result.code, message: result.message };
    return result.headers
      ? { ok: true, output: result.output, headers: result.headers }
      : { ok: true, output: result.output };
  };
}
