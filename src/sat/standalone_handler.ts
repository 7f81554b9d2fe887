/**
 * Standalone mode, like Suborbital's Sat: one runnable served over HTTP without relay or proxy.
 * Any method and path runs the module on the request body.
 *
 * - 200 with the output and the headers the runnable set; a runnable error answers with its code as the status (500 when
 *   outside 200-599) and Atmo's body `{"status":code,"message":"..."}`.
 * - `X-Atmo-State`: a JSON object of string values seeds the request state (each value stored
 *   as UTF-8 bytes); `X-Atmo-Params`: the same shape for URL parameters. Malformed: 400.
 *
 * @module
 */

import { atmoStringMap } from "../directive/mod.ts";
import type { Runnable } from "../wasm/mod.ts";

/** Options of createStandaloneHandler. */
export interface StandaloneHandlerOptions {
  /** Largest request body; larger gets 413. Default 10 MiB. */
  readonly maxBodyBytes?: number;
}

const encoder = new TextEncoder();

function errorResponse(status: number, message: string): Response {
  return new Response(JSON.stringify({ status, message }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/**
 * The standalone sat's `(Request) => Promise<Response>`.
 *
 * @example
 * ```ts
 * Deno.serve(createStandaloneHandler(runnable));
 * ```
 */
export function createStandaloneHandler(
  runnable: Runnable,
  options: StandaloneHandlerOptions = {},
): (request: Request) => Promise<Response> {
  const maxBody = options.maxBodyBytes ?? 10 * 1024 * 1024;
  return async (request) => {
    let state: Record<string, string> | undefined;
    let params: Record<string, string> | undefined;
    try {
      state = atmoStringMap(request.headers, "X-Atmo-State");
      params = atmoStringMap(request.headers, "X-Atmo-Params");
    } catch (error) {
      return errorResponse(400, (error as Error).message);
    }
    if (Number(request.headers.get("content-length") ?? 0) > maxBody) {
      return errorResponse(413, `the request body exceeds the limit of ${maxBody} bytes`);
    }
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.length > maxBody) {
      return errorResponse(413, `the request body exceeds the limit of ${maxBody} bytes`);
    }
    const url = new URL(request.url);
    const headers: Record<string, string> = {};
    request.headers.forEach((value, key) => (headers[key] = value));
    const result = await runnable.run(body, {
      method: request.method,
      url: url.pathname + url.search,
      id: crypto.randomUUID(),
      body,
      headers,
      params: params ?? {},
      state: Object.fromEntries(
        Object.entries(state ?? {}).map(([key, value]) => [key, encoder.encode(value)]),
      ),
    }, { signal: request.signal });
    if (result.ok) {
      try {
        return new Response(result.output as Uint8Array<ArrayBuffer>, {
          headers: result.headers,
        });
      } catch (error) {
        return errorResponse(
          500,
          `the runnable set an invalid header: ${(error as Error).message}`,
        );
      }
    }
    const status = result.code >= 200 && result.code <= 599 ? result.code : 500;
    return errorResponse(status, result.message);
  };
}
