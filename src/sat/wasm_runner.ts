/**
 * Runs invocations on the sat's Wasm runnables.
 *
 * @module
 */

import { bodyBytes, type InvocationRunner } from "../invocation/mod.ts";
import type { Runnable } from "../wasm/mod.ts";

const EMPTY = new Uint8Array(0);

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
  return async (header, received, cancellation) => {
    const runnable = runnables.get(header.fn);
    if (!runnable) {
      return { ok: false, code: 404, message: `this sat has no runnable named "${header.fn}"` };
    }
    // A body of known size streams straight into the instance's memory (held once); one of
    // unknown size is read first.
    const input = received instanceof Uint8Array
      ? received
      : received.size === undefined
      ? await bodyBytes(received)
      : { size: received.size, chunks: received.chunks };
    const result = await runnable.run(input, {
      method: header.method,
      url: header.url,
      id: header.requestId,
      body: input instanceof Uint8Array ? input : EMPTY,
      headers: header.headers,
      params: header.params,
      state: header.state === undefined ? {} : Object.fromEntries(
        Object.entries(header.state).map(([key, value]) => [key, Uint8Array.fromBase64(value)]),
      ),
    }, { cancellation });
    if (!result.ok) return { ok: false, code: result.code, message: result.message };
    return result.headers
      ? { ok: true, output: result.output, headers: result.headers }
      : { ok: true, output: result.output };
  };
}

/**
 * Keys of the runnables that never read the request (see `Runnable.readsRequest`), sorted: what
 * HELLO and READY tell the proxy, which then sends their invocations without the request's
 * headers and params.
 */
export function requestlessFunctions(runnables: ReadonlyMap<string, Runnable>): string[] {
  return [...runnables].filter(([, runnable]) => !runnable.readsRequest).map(([key]) => key)
    .sort();
}
