/**
 * Turns a Directive's route table into what the proxy handler needs: the handler to run.
 *
 * @module
 */

import { type Directive, type FnStep, type Handler, RouteTable } from "../directive/mod.ts";
import type { RouteResolution } from "./proxy_handler.ts";

/**
 * A resolver for `directive`'s request handlers.
 *
 * @example
 * ```ts
 * const resolve = routeResolver(await loadDirectiveFile("Directive.yaml"));
 * resolve("POST", "/hello"); // { kind: "found", handler, params: {} }
 * ```
 */
export function routeResolver(
  directive: Directive,
): (method: string, path: string) => RouteResolution {
  const requests = new RouteTable(directive);
  // Stream handlers (source: server) answer GET on their resource, upgraded to a WebSocket.
  const streamHandlers = directive.handlers.filter((h) =>
    h.type === "stream" && h.source === "server"
  );
  const streams = new RouteTable({
    handlers: streamHandlers.map((h) => ({ ...h, type: "request", method: "GET" }) as Handler),
  });
  const table = {
    match(method: string, path: string): RouteResolution {
      const found = requests.match(method, path);
      if (found.kind === "found") return { ...found, route: found.handler.resource };
      if (streamHandlers.length === 0) return found;
      const stream = streams.match(method, path);
      return stream.kind === "found"
        ? { ...stream, stream: true, route: stream.handler.resource }
        : found;
    },
  };
  if (!directive.headless) return (method, path) => table.match(method, path);
  // Headless mode (Atmo): POST /{identifier}/{namespace}/{fn}/{appVersion} runs one function,
  // its state seeded from the X-Atmo-State header.
  const prefix = `/${directive.identifier}/`;
  const suffix = `/${directive.appVersion}`;
  return (method, path) => {
    if (method === "POST" && path.startsWith(prefix) && path.endsWith(suffix)) {
      const middle = path.slice(prefix.length, path.length - suffix.length).split("/");
      if (middle.length === 2 && middle.every((part) => /^[A-Za-z0-9_.-]+$/.test(part))) {
        const [namespace, name] = middle as [string, string];
        const step: FnStep = {
          kind: "fn",
          fn: name,
          name,
          namespace,
          as: name,
          with: {},
          onErr: { codes: {}, other: "return" },
        };
        return {
          kind: "found",
          handler: { steps: [step], response: name },
          params: {},
          seedStateFromHeader: true,
        };
      }
    }
    return table.match(method, path);
  };
}
