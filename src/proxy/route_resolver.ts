/**
 * Turns a Directive's route table into what the proxy handler needs: the handler to run.
 *
 * @module
 */

import { type Directive, RouteTable } from "../directive/mod.ts";
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
  const table = new RouteTable(directive);
  return (method, path) => table.match(method, path);
}
