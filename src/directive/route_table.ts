/**
 * RouteTable: finds the request handler for a method and path.
 *
 * Patterns (a handler's `resource`) are those of Atmo, whose router is julienschmidt/httprouter:
 * - a static segment matches that segment (compared after percent-decoding both);
 * - `:name` matches one non-empty segment; its value is percent-decoded;
 * - a trailing `*name` matches the rest of the path including its leading `/` (`/files/*path`
 *   matches `/files/` with `path = "/"` and `/files/a/b` with `path = "/a/b"`, but not
 *   `/files`); its value is percent-decoded segment by segment, so `%2F` becomes `/`.
 *
 * Precedence, when several resources of the request's method match one path: at the first
 * segment where they differ, a static segment beats a `:param`, which beats a `*catch-all`.
 * So `/users/new` beats `/users/:id`, `/users/:id/posts` beats `/users/*rest`, and for
 * `/a/b`, `/a/*rest` beats `/:x/b`. Only routes of the request's method compete: with
 * `POST /users/new` and `GET /users/:id`, `GET /users/new` finds the second. (httprouter
 * instead refused such overlapping patterns at startup; every set it accepted routes the same
 * here.)
 *
 * Methods match exactly (they are case-sensitive, RFC 9110 §9.1). HEAD does not fall back to
 * GET, as in Atmo: httprouter only serves HEAD where a HEAD handler is declared. When a path
 * matches some resource but not for the request's method, the result is "method-not-allowed"
 * with every method that path does accept, for the `Allow` header of a 405 (RFC 9110 §15.5.6)
 * or of an OPTIONS answer. A path with malformed percent-encoding matches nothing.
 *
 * Speed: the patterns are compiled once into a deterministic automaton over segments (each
 * state is the set of pattern-tree nodes a prefix can be at, with the best route per method
 * precomputed), so a match is one map lookup per segment, with no backtracking, whatever the
 * number of routes. Overlapping parameter patterns multiply states in theory; real route sets
 * stay close to one state per pattern-tree node.
 *
 * @module
 */

import type { Handler, RequestHandler } from "./directive.ts";
import { HTTP_METHODS } from "./directive.ts";
import { parseResource, type ResourceSegment } from "./_resource.ts";

/** The outcome of {@link RouteTable.match}. */
export type RouteMatch =
  | {
    /** A handler serves this method and path. */
    readonly kind: "found";
    /** The handler. */
    readonly handler: RequestHandler;
    /** Parameter and catch-all values by name, percent-decoded (a null-prototype object). */
    readonly params: Record<string, string>;
  }
  | {
    /** The path matches, but not for this method: answer 405 with `Allow`. */
    readonly kind: "method-not-allowed";
    /** Methods the path accepts, in {@link HTTP_METHODS} order. */
    readonly allowed: string[];
  }
  | {
    /** No handler's resource matches the path: answer 404. */
    readonly kind: "not-found";
  };

const NOT_FOUND: RouteMatch = Object.freeze({ kind: "not-found" });

/** Per-segment precedence: lower wins. */
type SegmentRank = 0 | 1 | 2;
const STATIC: SegmentRank = 0;
const PARAM: SegmentRank = 1;
const CATCH_ALL: SegmentRank = 2;

interface Route {
  readonly handler: RequestHandler;
  readonly method: string;
  /** Rank among all routes: lower wins (see the module doc's precedence). */
  rank: number;
  readonly signature: readonly SegmentRank[];
  readonly order: number;
  /** Parameter names with the index of the path segment they take. */
  readonly params: readonly { readonly name: string; readonly index: number }[];
  /** Catch-all name and the index of the first segment it takes. */
  readonly catchAll?: { readonly name: string; readonly index: number };
}

/** A node of the pattern tree (one per distinct pattern prefix). */
class PatternNode {
  readonly id: number;
  readonly statics = new Map<string, PatternNode>();
  param: PatternNode | undefined;
  /** Routes whose pattern ends here. */
  readonly ends: Route[] = [];
  /** Routes whose trailing catch-all starts here. */
  readonly catchAlls: Route[] = [];

  constructor(id: number) {
    this.id = id;
  }
}

/** A state of the compiled automaton: the set of pattern nodes a path prefix can be at. */
interface State {
  readonly statics: Map<string, State>;
  /** Where a non-empty segment that is none of `statics`' keys leads. */
  other: State | undefined;
  /** Best route per method among patterns ending here, or undefined when none. */
  ends: Map<string, Route> | undefined;
  /** Best route per method among catch-alls starting here, or undefined when none. */
  catchAlls: Map<string, Route> | undefined;
}

/**
 * The request handlers of a Directive, compiled for matching.
 *
 * @example
 * ```ts
 * const routes = new RouteTable(parseDirective(text, { file: "Directive.yaml" }));
 * const url = new URL(request.url);
 * const m = routes.match(request.method, url.pathname);
 * if (m.kind === "found") run(m.handler, m.params);
 * else if (m.kind === "method-not-allowed") respond(405, { Allow: m.allowed.join(", ") });
 * else respond(404);
 * ```
 */
export class RouteTable {
  readonly #root: State;
  readonly #size: number;

  /**
   * Compiles the `type: request` handlers; stream handlers are left out.
   *
   * @param directive a Directive (or anything with its `handlers`), normally from
   *   `parseDirective`, which has already refused duplicate routes
   * @throws TypeError when a resource is malformed (only possible for handlers that did not
   *   come from `parseDirective`)
   */
  constructor(directive: { readonly handlers: readonly Handler[] }) {
    const root = new PatternNode(0);
    const nodes = [root];
    const routes: Route[] = [];
    for (const handler of directive.handlers) {
      if (handler.type !== "request") continue;
      const parsed = parseResource(handler.resource);
      if ("error" in parsed) throw new TypeError(`route ${handler.method}: ${parsed.error}`);
      routes.push(insert(root, nodes, handler, parsed.segments, routes.length));
    }
    // Precedence is the lexicographic order of signatures, then declaration order.
    [...routes].sort(compareRoutes).forEach((route, i) => route.rank = i);
    this.#size = routes.length;
    this.#root = compile(root);
  }

  /** Number of request routes. */
  get size(): number {
    return this.#size;
  }

  /**
   * Finds the handler for a request.
   *
   * @param method the request method, as sent (case-sensitive)
   * @param path the URL path, still percent-encoded, starting with `/`, without query or
   *   fragment: `new URL(request.url).pathname`
   * @returns found (handler and decoded params), method-not-allowed (with the allowed
   *   methods), or not-found
   */
  match(method: string, path: string): RouteMatch {
    if (path.charCodeAt(0) !== 0x2f /* "/" */) return NOT_FOUND;
    const segments = path.slice(1).split("/");
    if (path.includes("%")) {
      for (let i = 0; i < segments.length; i++) {
        try {
          segments[i] = decodeURIComponent(segments[i]!);
        } catch {
          return NOT_FOUND;
        }
      }
    }
    const n = segments.length;
    let best: Route | undefined;
    let state = this.#root;
    let depth = 0;
    // Catch-all tables passed on the way, for the Allow list of a 405.
    let passed: Map<string, Route>[] | undefined;
    for (; depth < n; depth++) {
      const catchAlls = state.catchAlls;
      if (catchAlls) {
        const route = catchAlls.get(method);
        if (route && (!best || route.rank < best.rank)) best = route;
        (passed ??= []).push(catchAlls);
      }
      const segment = segments[depth]!;
      const next = state.statics.get(segment) ?? (segment === "" ? undefined : state.other);
      if (!next) break;
      state = next;
    }
    const ends = depth === n ? state.ends : undefined;
    const route = ends?.get(method);
    if (route && (!best || route.rank < best.rank)) best = route;
    if (best) return { kind: "found", handler: best.handler, params: paramsOf(best, segments) };
    if (!ends && !passed) return NOT_FOUND;
    const allowed = new Set<string>();
    for (const table of ends ? [ends, ...(passed ?? [])] : passed!) {
      for (const m of table.keys()) allowed.add(m);
    }
    return { kind: "method-not-allowed", allowed: sortMethods(allowed) };
  }
}

function insert(
  root: PatternNode,
  nodes: PatternNode[],
  handler: RequestHandler,
  segments: readonly ResourceSegment[],
  order: number,
): Route {
  let node = root;
  const signature: SegmentRank[] = [];
  const params: { name: string; index: number }[] = [];
  let catchAll: { name: string; index: number } | undefined;
  segments.forEach((segment, index) => {
    if (segment.kind === "static") {
      signature.push(STATIC);
      let child = node.statics.get(segment.value);
      if (!child) node.statics.set(segment.value, child = newNode(nodes));
      node = child;
    } else if (segment.kind === "param") {
      signature.push(PARAM);
      params.push({ name: segment.name, index });
      node = node.param ??= newNode(nodes);
    } else {
      signature.push(CATCH_ALL);
      catchAll = { name: segment.name, index };
    }
  });
  const route: Route = {
    handler,
    method: handler.method,
    rank: 0,
    signature,
    order,
    params,
    ...(catchAll ? { catchAll } : {}),
  };
  (catchAll ? node.catchAlls : node.ends).push(route);
  return route;
}

function newNode(nodes: PatternNode[]): PatternNode {
  const node = new PatternNode(nodes.length);
  nodes.push(node);
  return node;
}

function compareRoutes(a: Route, b: Route): number {
  const n = Math.min(a.signature.length, b.signature.length);
  for (let i = 0; i < n; i++) {
    const d = a.signature[i]! - b.signature[i]!;
    if (d !== 0) return d;
  }
  // Two signatures where one is a prefix of the other never match the same path.
  return a.signature.length - b.signature.length || a.order - b.order;
}

/** Subset construction over the pattern tree, from the root. */
function compile(root: PatternNode): State {
  const states = new Map<string, State>();
  const pending: [State, readonly PatternNode[]][] = [];
  const stateOf = (set: readonly PatternNode[]): State => {
    const key = set.map((n) => n.id).sort((a, b) => a - b).join(",");
    let state = states.get(key);
    if (!state) {
      state = {
        statics: new Map(),
        other: undefined,
        ends: bestByMethod(set.flatMap((n) => n.ends)),
        catchAlls: bestByMethod(set.flatMap((n) => n.catchAlls)),
      };
      states.set(key, state);
      pending.push([state, set]);
    }
    return state;
  };
  const start = stateOf([root]);
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [state, set] = next;
    const params = set.flatMap((n) => n.param ? [n.param] : []);
    const keys = new Set(set.flatMap((n) => [...n.statics.keys()]));
    for (const key of keys) {
      const targets = set.flatMap((n) => {
        const child = n.statics.get(key);
        return child ? [child] : [];
      });
      // An empty segment never matches a parameter.
      state.statics.set(key, stateOf(key === "" ? targets : [...targets, ...params]));
    }
    if (params.length > 0) state.other = stateOf(params);
  }
  return start;
}

function bestByMethod(routes: readonly Route[]): Map<string, Route> | undefined {
  if (routes.length === 0) return undefined;
  const best = new Map<string, Route>();
  for (const route of routes) {
    const current = best.get(route.method);
    if (!current || route.rank < current.rank) best.set(route.method, route);
  }
  return best;
}

/**
 * The params of a match, as own properties of a plain object: JSON.stringify (every request's
 * invocation header holds them) takes a fast path for it that a null-prototype object misses,
 * 3.4 times as slow for a typical header. Read them as own properties only (`Object.hasOwn`).
 */
function paramsOf(route: Route, segments: readonly string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const { name, index } of route.params) setParam(params, name, segments[index]!);
  if (route.catchAll) {
    setParam(
      params,
      route.catchAll.name,
      "/" + segments.slice(route.catchAll.index).join("/"),
    );
  }
  return params;
}

/** `params[name] = value`, also for the name `__proto__`, which assignment would not define. */
function setParam(params: Record<string, string>, name: string, value: string): void {
  if (name === "__proto__") {
    Object.defineProperty(params, name, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else params[name] = value;
}

function sortMethods(methods: ReadonlySet<string>): string[] {
  const known: readonly string[] = HTTP_METHODS;
  return [...methods].sort((a, b) => {
    const ia = known.indexOf(a), ib = known.indexOf(b);
    return (ia < 0 ? known.length : ia) - (ib < 0 ? known.length : ib) || (a < b ? -1 : 1);
  });
}
