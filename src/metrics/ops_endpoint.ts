/**
 * The operations endpoints: `GET /metrics` (Prometheus text), `GET /health` (200 while the
 * process serves: liveness) and `GET /ready` (200 when the service can do its job, else 503
 * with the reason). The proxy answers them on its `--http` listener before any Directive route;
 * relay and sat serve them on their own `--metrics HOST:PORT` listener.
 *
 * @module
 */

import type { MetricsRegistry } from "./metrics_registry.ts";

/** Options of {@linkcode opsResponse} and {@linkcode serveOpsEndpoint}. */
export interface OpsEndpointOptions {
  readonly metrics: MetricsRegistry;
  /** Why the service is not ready, or undefined when it is. */
  readonly notReady: () => string | undefined;
}

const PATHS = new Set(["/metrics", "/health", "/ready"]);

/**
 * The answer to an operations request, or undefined when `path` is not one of them.
 */
export function opsResponse(
  method: string,
  path: string,
  options: OpsEndpointOptions,
): Response | undefined {
  if (!PATHS.has(path)) return undefined;
  if (method !== "GET" && method !== "HEAD") {
    return new Response(`${method} is not allowed on ${path}\n`, {
      status: 405,
      headers: { allow: "GET, HEAD" },
    });
  }
  if (path === "/metrics") return options.metrics.response();
  if (path === "/health") return new Response("ok\n");
  const reason = options.notReady();
  return reason === undefined
    ? new Response("ready\n")
    : new Response(`not ready: ${reason}\n`, { status: 503 });
}

/**
 * Serves the operations endpoints alone on `hostname:port` (relay and sat).
 *
 * @returns the server (its `addr` has the real port)
 */
export function serveOpsEndpoint(
  listen: { hostname: string; port: number },
  options: OpsEndpointOptions,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: listen.hostname, port: listen.port, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    return opsResponse(req.method, path, options) ??
      new Response(`not found: ${path} (this listener serves /metrics, /health, /ready)\n`, {
        status: 404,
      });
  });
}
