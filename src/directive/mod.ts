/**
 * Directive layer: parse and validate Directive.yaml (Suborbital Atmo v0.4's format) into a
 * resolved, readonly {@link Directive}, and route requests to its handlers with a
 * {@link RouteTable}. Other layers import the directive only through this file.
 *
 * @example
 * ```ts
 * import { loadDirectiveFile, RouteTable } from "./directive/mod.ts";
 *
 * const directive = await loadDirectiveFile("Directive.yaml", { runnables: ["helloworld-rs"] });
 * const routes = new RouteTable(directive);
 * const m = routes.match("POST", "/hello"); // { kind: "found", handler, params: {} }
 * ```
 *
 * @module
 */

export {
  type Authentication,
  type CallableFn,
  type Connections,
  type Directive,
  type DomainAuth,
  type ErrorAction,
  type ErrorPolicy,
  type FnStep,
  type GroupStep,
  type Handler,
  type HandlerBase,
  HTTP_METHODS,
  type HttpMethod,
  type Query,
  type RequestHandler,
  type RunnableEntry,
  type Schedule,
  type ScheduleEvery,
  type SourceLocation,
  type Step,
  type StreamHandler,
} from "./directive.ts";
export { DirectiveError, type DirectiveProblem, formatProblem } from "./directive_error.ts";
export { DIRECTIVE_KEYS, RESERVED_PATHS } from "./directive_keys.ts";
export {
  DEFAULT_NAMESPACE,
  MAX_DIRECTIVE_LEN,
  parseDirective,
  type ParseDirectiveOptions,
} from "./parse_directive.ts";
export { loadDirectiveFile, type LoadDirectiveFileOptions } from "./load_directive_file.ts";
export { type RouteMatch, RouteTable } from "./route_table.ts";
export {
  type CallFn,
  type FnOutcome,
  runSteps,
  stateView,
  type StepsOutcome,
} from "./run_steps.ts";
export { atmoStringMap } from "./atmo_header.ts";
