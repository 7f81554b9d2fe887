/**
 * Turns a Directive's route table into what the proxy handler needs: the functions to run.
 *
 * @module
 */

import { type Directive, RouteTable, type Step } from "../directive/mod.ts";
import type { RouteResolution } from "./proxy_handler.ts";

function fnsOf(steps: readonly Step[]): string[] {
  return steps.flatMap((step) => step.kind === "fn" ? [step.fn] : step.group.map((g) => g.fn));
}

/**
 * A resolver for `directive`'s request handlers.
 *
 * @example
 * ```ts
 * const resolve = routeResolver(await loadDirectiveFile("Directive.yaml"));
 * resolve("POST", "/hello"); // { kind: "found", fns: ["helloworld-rs"], params: {} }
 * ```
 */
export function routeResolver(
  directive: Directive,
): (method: string, path: string) => RouteResolution {
  const table = new RouteTable(directive);
  const fns = new Map<unknown, string[]>();
  return (method, path) => {
    const match = table.match(method, path);
    if (match.kind !== "found") return match;
    let list = fns.get(match.handler);
    if (!list) fns.set(match.handler, list = fnsOf(match.handler.steps));
    return { kind: "found", fns: list, params: match.params };
  };
}
