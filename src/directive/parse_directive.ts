/**
 * parseDirective: Directive.yaml text → a validated, resolved {@link Directive}.
 *
 * text → `yaml` parseDocument (duplicate keys rejected, positions kept) → the node tree, read
 * as untyped input → one validator that walks it with a path label, rejects unknown keys and
 * collects every problem → a resolved, deeply frozen Directive with defaults applied once, or
 * a {@link DirectiveError} listing every problem.
 *
 * The schema is Suborbital Atmo v0.4's: a file Atmo v0.4 accepts is accepted, with these
 * deliberate differences, each refusing something Atmo would have mis-served or ignored:
 * - unknown keys are refused everywhere except inside `capabilities` (Atmo's YAML decoder
 *   ignored them silently, so typos went unnoticed);
 * - `type` may be left out and defaults to `request` (Atmo requires it);
 * - `method` must be an upper-case HTTP method, and two request handlers may not serve the
 *   same method and resource (Atmo's router panicked at startup);
 * - a parameter must be a whole path segment (`/user_:name` is refused);
 * - a route on exactly `/metrics`, `/health` or `/ready` (any method, request or WebSocket
 *   stream) is refused: the proxy answers those paths itself before consulting the routes, so
 *   the handler could never run. Parameter routes such as `/:page` stay allowed: they still
 *   serve every other path;
 * - `source`/`respondTo` are refused on request handlers; group steps carry no `as`/`with`/
 *   `onErr` of their own (Atmo silently ignored them);
 * - `runnables` may be absent (a project Directive, before Subo bundles it).
 *
 * @module
 */

import { isMap, isScalar, LineCounter, parseDocument } from "yaml";
import type {
  Authentication,
  CallableFn,
  Connections,
  Directive,
  DomainAuth,
  ErrorAction,
  ErrorPolicy,
  Handler,
  HttpMethod,
  Query,
  RunnableEntry,
  Schedule,
  ScheduleEvery,
  SourceLocation,
  Step,
} from "./directive.ts";
import { HTTP_METHODS } from "./directive.ts";
import { DirectiveError, type DirectiveProblem } from "./directive_error.ts";
import {
  AliasBudgetError,
  childPath,
  type Entry,
  type Fields,
  NodeReader,
} from "./_node_reader.ts";
import { parseResource, type ResourceSegment, routeShape } from "./_resource.ts";
import { closest } from "./_suggest.ts";
import { DIRECTIVE_KEYS, RESERVED_PATHS } from "./directive_keys.ts";

/** Largest Directive accepted, in UTF-16 code units of text (1 MiB). */
export const MAX_DIRECTIVE_LEN = 1 << 20;

/** Options of {@link parseDirective}. */
export interface ParseDirectiveOptions {
  /** File name used in problems (`Directive.yaml:12:9: ...`) and `Directive.file`. */
  readonly file: string;
  /**
   * Runnable names available, as steps reference them (`hello-rs`, `db::get-user`). When
   * given, every `fn` must name one of them, with a "did you mean" hint for near misses. When
   * absent, the file's own `runnables` list (written by Subo) is used if present; otherwise fn
   * references are only checked for shape.
   */
  readonly runnables?: readonly string[];
}

/** Default namespace of a runnable reference without `namespace::`. */
export const DEFAULT_NAMESPACE = "default";

const TOP_KEYS = DIRECTIVE_KEYS.directive;
const HANDLER_KEYS = DIRECTIVE_KEYS.handler;
const FN_KEYS = DIRECTIVE_KEYS.fn;
const STEP_KEYS = DIRECTIVE_KEYS.step;
const ON_ERR_KEYS = DIRECTIVE_KEYS.onErr;
const SCHEDULE_KEYS = DIRECTIVE_KEYS.schedule;
const EVERY_KEYS = DIRECTIVE_KEYS.every as readonly (keyof ScheduleEvery)[];
const CONNECTION_KEYS = DIRECTIVE_KEYS.connections;
const QUERY_KEYS = DIRECTIVE_KEYS.query;
const QUERY_TYPES = ["insert", "select", "update", "delete"] as const;
const RUNNABLE_KEYS = DIRECTIVE_KEYS.runnable;
const ERROR_ACTIONS: readonly ErrorAction[] = ["continue", "return"];

const ONLY_STREAM = 'only applies to type "stream"; remove it, or set "type: stream"';

/** Reverse-DNS: two or more dot-separated labels. */
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)+$/;
/** Go's golang.org/x/mod/semver, which Atmo uses: `v1`, `v1.2` and `v1.2.3-pre+build`. */
const SEMVER = new RegExp(
  "^v(0|[1-9]\\d*)(\\.(0|[1-9]\\d*)(\\.(0|[1-9]\\d*)" +
    "(-(0|[1-9]\\d*|\\d*[A-Za-z-][0-9A-Za-z-]*)(\\.(0|[1-9]\\d*|\\d*[A-Za-z-][0-9A-Za-z-]*))*)?" +
    "(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?)?)?$",
);
const NAME_PART = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Parses and validates a Directive.
 *
 * @param text the YAML text
 * @param options `file` names the source in problems; `runnables` lists the runnables
 *   available, to check every `fn` against
 * @returns the resolved Directive, deeply frozen
 * @throws DirectiveError listing every problem: YAML syntax, duplicate keys, unknown keys,
 *   wrong types, missing or malformed values, unknown runnables, duplicate or conflicting
 *   routes, routes on the proxy's own paths
 * @throws RangeError when the text is longer than {@link MAX_DIRECTIVE_LEN}
 *
 * @example
 * ```ts
 * const directive = parseDirective(await Deno.readTextFile("Directive.yaml"), {
 *   file: "Directive.yaml",
 *   runnables: ["helloworld-rs"],
 * });
 * const routes = new RouteTable(directive);
 * ```
 */
export function parseDirective(text: string, options: ParseDirectiveOptions): Directive {
  const file = options.file;
  if (text.length > MAX_DIRECTIVE_LEN) {
    throw new RangeError(
      `${file}: a Directive may be at most ${MAX_DIRECTIVE_LEN} characters, got ${text.length}`,
    );
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    uniqueKeys: true,
    prettyErrors: false,
  });
  const duplicateKeys = new Set<number>();
  const syntax: DirectiveProblem[] = [];
  for (const error of [...doc.errors, ...doc.warnings]) {
    if (error.code === "DUPLICATE_KEY") {
      duplicateKeys.add(error.pos[0]);
      continue;
    }
    const { line, col } = lines.linePos(error.pos[0]);
    syntax.push({ file, line, column: col, path: "", message: error.message });
  }
  const reader = new NodeReader(doc, lines, file, duplicateKeys);
  if (syntax.length > 0) {
    // The tree may not reflect what was meant: report the syntax alone.
    throw new DirectiveError(file, sortProblems(syntax));
  }
  let directive: Directive | undefined;
  try {
    directive = new Validator(reader, options).directive(doc.contents);
  } catch (err) {
    // The alias budget is spent: the problem is reported; stop walking.
    if (!(err instanceof AliasBudgetError)) throw err;
  }
  for (const at of duplicateKeys) reader.report(at, "", "duplicate key; keep one of them");
  if (reader.problems.length > 0 || directive === undefined) {
    throw new DirectiveError(file, sortProblems(reader.problems));
  }
  return deepFreeze(directive);
}

function sortProblems(problems: readonly DirectiveProblem[]): DirectiveProblem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function quoteList(values: Iterable<string>, max = 8): string {
  const all = [...values];
  const shown = all.slice(0, max).map((v) => JSON.stringify(v)).join(", ");
  return all.length > max ? `${shown}, ...` : shown;
}

/** A runnable reference: `[identifier#][namespace::]name[@version]`, Atmo's FQFN grammar. */
interface RunnableRef {
  readonly identifier?: string;
  readonly namespace: string;
  readonly name: string;
  readonly version?: string;
}

function parseRunnableRef(ref: string): RunnableRef | undefined {
  let rest = ref;
  let identifier: string | undefined;
  let namespace = DEFAULT_NAMESPACE;
  let version: string | undefined;
  const hash = rest.indexOf("#");
  if (hash >= 0) [identifier, rest] = [rest.slice(0, hash), rest.slice(hash + 1)];
  const colons = rest.indexOf("::");
  if (colons >= 0) [namespace, rest] = [rest.slice(0, colons), rest.slice(colons + 2)];
  const at = rest.indexOf("@");
  if (at >= 0) [rest, version] = [rest.slice(0, at), rest.slice(at + 1)];
  if (identifier !== undefined && !IDENTIFIER.test(identifier)) return undefined;
  if (version !== undefined && !SEMVER.test(version)) return undefined;
  if (!NAME_PART.test(namespace) || !NAME_PART.test(rest)) return undefined;
  return { identifier, namespace, name: rest, version };
}

/** The reserved path (see {@link RESERVED_PATHS}) a resource is exactly, if any. */
function reservedPath(segments: readonly ResourceSegment[]): string | undefined {
  const [only] = segments;
  if (segments.length !== 1 || only?.kind !== "static") return undefined;
  return RESERVED_PATHS.find((path) => path === "/" + only.value);
}

/** Where state keys come from, for messages: the keys available at a point of the steps. */
function available(state: ReadonlySet<string>): string {
  return state.size === 0 ? "the state is empty here" : `available: ${quoteList(state)}`;
}

/** A handler as read, with what the duplicate-route check needs. */
interface HandlerRead {
  readonly handler: Handler;
  /** `METHOD shape` of a valid request route (see `routeShape`), else undefined. */
  readonly routeKey?: string;
  /** The resource's segments, when `routeKey` is set. */
  readonly segments?: readonly ResourceSegment[];
  /** Offset of the resource, where a duplicate is reported. */
  readonly resourceAt: number;
}

/** The validator for one file: one method per schema element, each collecting problems. */
class Validator {
  readonly #r: NodeReader;
  readonly #options: ParseDirectiveOptions;
  #identifier: string | undefined;
  #appVersion: string | undefined;
  /** Known runnables by `namespace::name` → the spelling to suggest. */
  #known: Map<string, string> | undefined;
  #connections: Connections = {};

  constructor(reader: NodeReader, options: ParseDirectiveOptions) {
    this.#r = reader;
    this.#options = options;
  }

  directive(root: unknown): Directive | undefined {
    const r = this.#r;
    if (r.isNull(root)) {
      r.report(0, "", "the Directive is empty; it needs identifier, appVersion and atmoVersion");
      return undefined;
    }
    const top = r.fields(
      root,
      0,
      "",
      "a map of identifier, appVersion, atmoVersion, handlers, ...",
      TOP_KEYS,
    );
    if (!top) return undefined;
    const e = top.entries;

    const identifier = this.#required(
      top,
      "identifier",
      'a reverse-DNS name like "com.example.app"',
    );
    if (identifier) {
      const id = r.string(identifier, 'a reverse-DNS name like "com.example.app"');
      if (id !== undefined && !IDENTIFIER.test(id)) {
        r.report(
          identifier.at,
          identifier.path,
          `${JSON.stringify(id)} is not a reverse-DNS identifier (like "com.example.${
            id.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "app"
          }")`,
        );
      } else this.#identifier = id;
    }
    this.#appVersion = this.#version(top, "appVersion", "v0.1.0");
    const atmoVersion = this.#version(top, "atmoVersion", "v0.4.0");

    let headless = false;
    const headlessEntry = e.get("headless");
    if (headlessEntry && !r.isNull(headlessEntry.value)) {
      headless = r.boolean(headlessEntry) ?? false;
    }

    // Runnables and connections first: handlers are checked against them.
    const runnables = this.#optionalList(
      e.get("runnables"),
      "a list of runnables",
      (item) => this.#runnable(item.value, item.at, item.path),
    );
    if (this.#options.runnables) {
      this.#known = new Map(
        this.#options.runnables.map((spelling) => {
          const ref = parseRunnableRef(spelling);
          return [ref ? `${ref.namespace}::${ref.name}` : spelling, spelling];
        }),
      );
    } else if (e.has("runnables")) {
      this.#known = new Map(
        runnables.map((entry) => [
          `${entry.namespace}::${entry.name}`,
          entry.namespace === DEFAULT_NAMESPACE ? entry.name : `${entry.namespace}::${entry.name}`,
        ]),
      );
    }
    this.#connections = this.#connectionsOf(e.get("connections"));

    const handlers = this.#optionalList(
      e.get("handlers"),
      "a list of handlers",
      (item) => this.#handler(item.value, item.at, item.path),
    );
    this.#checkRoutes(handlers);
    const schedules = this.#optionalList(
      e.get("schedules"),
      "a list of schedules",
      (item) => this.#schedule(item.value, item.at, item.path),
    );
    const authentication = this.#authentication(e.get("authentication"));
    const queries = this.#optionalList(
      e.get("queries"),
      "a list of queries",
      (item) => this.#query(item.value, item.at, item.path),
    );

    let capabilities: Readonly<Record<string, unknown>> | undefined;
    const caps = e.get("capabilities");
    if (caps && !r.isNull(caps.value)) {
      if (isMap(caps.value)) {
        capabilities = r.plain(caps.value, caps.at, caps.path) as Record<string, unknown>;
      } else r.wrongType(caps.value, caps.at, caps.path, "a map of capabilities");
    }

    // Only returned when no problem was reported, so every required value is present.
    return {
      file: this.#options.file,
      identifier: this.#identifier ?? "",
      appVersion: this.#appVersion ?? "",
      atmoVersion: atmoVersion ?? "",
      headless,
      handlers: handlers.map((h) => h.handler),
      schedules,
      connections: this.#connections,
      authentication,
      ...(capabilities ? { capabilities } : {}),
      queries,
      runnables,
    };
  }

  // ---------------------------------------------------------------- helpers

  #location(at: number, path: string): SourceLocation {
    return { file: this.#options.file, ...this.#r.position(at), path };
  }

  /** The entry for a required key; reports `is missing; add <hint>` on the map if absent. */
  #required(fields: Fields, key: string, hint: string): Entry | undefined {
    const entry = fields.entries.get(key);
    if (entry && !this.#r.isNull(entry.value)) return entry;
    const path = childPath(fields.path, key);
    this.#r.report(entry?.keyAt ?? fields.at, path, `is missing; add ${hint}`);
    return undefined;
  }

  #version(top: Fields, key: string, example: string): string | undefined {
    const expected = `a version like "${example}"`;
    const entry = this.#required(top, key, expected);
    if (!entry) return undefined;
    const value = this.#r.text(entry, expected);
    if (value === undefined) return undefined;
    const isString = isScalar(entry.value) && typeof entry.value.value === "string";
    if (isString && SEMVER.test(value)) return value;
    // `1.0` or `0.4.0`: suggest the full version with its "v".
    const fix = /^\d+(\.\d+){0,2}$/.test(value)
      ? "v" + [...value.split("."), "0", "0"].slice(0, 3).join(".")
      : SEMVER.test("v" + value)
      ? "v" + value
      : undefined;
    this.#r.report(
      entry.at,
      entry.path,
      isString
        ? `${JSON.stringify(value)} is not a semantic version with a leading "v"` +
          (fix ? ` (did you mean "${fix}"?)` : `, like "${example}"`)
        : `must be a version string, got ${value}` +
          (fix ? ` (did you mean "${fix}"?)` : ` (like "${example}")`),
    );
    return undefined;
  }

  /** Items of an optional list (null/absent → empty), each read by `read`. */
  #optionalList<T>(
    entry: Entry | undefined,
    expected: string,
    read: (item: { value: unknown; at: number; path: string }) => T | undefined,
  ): T[] {
    if (!entry || this.#r.isNull(entry.value)) return [];
    const items = this.#r.items(entry.value, entry.at, entry.path, expected) ?? [];
    const out: T[] = [];
    for (const item of items) {
      const value = read(item);
      if (value !== undefined) out.push(value);
    }
    return out;
  }

  #oneOf<T extends string>(
    entry: Entry,
    allowed: readonly T[],
    what: string,
  ): T | undefined {
    const value = this.#r.string(entry, `one of ${allowed.map((a) => `"${a}"`).join(", ")}`);
    if (value === undefined) return undefined;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    const guess = closest(value, allowed);
    const quoted = allowed.map((a) => `"${a}"`);
    const all = quoted.length > 1
      ? `${quoted.slice(0, -1).join(", ")} or ${quoted[quoted.length - 1]}`
      : quoted.join("");
    this.#r.report(
      entry.at,
      entry.path,
      `${JSON.stringify(value)} is not ${what}` +
        (guess ? ` (did you mean "${guess}"?)` : `; use ${all}`),
    );
    return undefined;
  }

  #method(entry: Entry): HttpMethod | undefined {
    const value = this.#r.string(entry, `an HTTP method (${HTTP_METHODS.join(", ")})`);
    if (value === undefined) return undefined;
    if ((HTTP_METHODS as readonly string[]).includes(value)) return value as HttpMethod;
    const upper = value.toUpperCase();
    const guess = (HTTP_METHODS as readonly string[]).includes(upper)
      ? upper
      : closest(value, HTTP_METHODS);
    this.#r.report(
      entry.at,
      entry.path,
      `${JSON.stringify(value)} is not an HTTP method` +
        (guess ? ` (did you mean "${guess}"?)` : `; use one of ${HTTP_METHODS.join(", ")}`),
    );
    return undefined;
  }

  // ---------------------------------------------------------------- handlers

  #handler(
    node: unknown,
    at: number,
    path: string,
  ): HandlerRead | undefined {
    const r = this.#r;
    const f = r.fields(
      node,
      at,
      path,
      "a handler (a map of type, resource, method, steps)",
      HANDLER_KEYS,
    );
    if (!f) return undefined;
    const e = f.entries;
    const location = this.#location(f.at, path);

    // undefined when the type is invalid: then no type-specific check runs.
    let type: "request" | "stream" | undefined = "request";
    const typeEntry = e.get("type");
    if (typeEntry && !r.isNull(typeEntry.value)) {
      type = this.#oneOf(typeEntry, ["request", "stream"] as const, "a handler type");
    }

    let source: "server" | "nats" = "server";
    const sourceEntry = e.get("source");
    if (sourceEntry && type) {
      if (type !== "stream") {
        r.report(sourceEntry.keyAt, sourceEntry.path, ONLY_STREAM);
      } else {
        source = this.#oneOf(sourceEntry, ["server", "nats"] as const, "a stream source") ??
          source;
        if (source === "nats" && !this.#connections.nats) {
          r.report(
            sourceEntry.at,
            sourceEntry.path,
            '"nats" needs a NATS connection; add connections.nats.serverAddress',
          );
        }
      }
    }
    let respondTo: string | undefined;
    const respondToEntry = e.get("respondTo");
    if (respondToEntry && type) {
      if (type !== "stream") {
        r.report(respondToEntry.keyAt, respondToEntry.path, ONLY_STREAM);
      } else respondTo = r.string(respondToEntry, "a subject name");
    }

    let resource = "";
    let routeKey: string | undefined;
    let segments: readonly ResourceSegment[] | undefined;
    const resourceEntry = this.#required(f, "resource", 'the route, like "/hello"');
    if (resourceEntry) {
      const value = r.string(resourceEntry, 'a route like "/hello"');
      if (value !== undefined) {
        resource = value;
        if (type !== "stream" || source === "server") {
          const parsed = parseResource(value);
          const reserved = "error" in parsed ? undefined : reservedPath(parsed.segments);
          if ("error" in parsed) r.report(resourceEntry.at, resourceEntry.path, parsed.error);
          else if (reserved !== undefined) {
            r.report(
              resourceEntry.at,
              resourceEntry.path,
              `the proxy serves ${JSON.stringify(reserved)} itself, before any handler, ` +
                `so this handler would never run; choose another path (like ${
                  JSON.stringify("/app" + reserved)
                })`,
            );
          } else {
            routeKey = routeShape(parsed.segments);
            segments = parsed.segments;
          }
        }
      }
    }

    let method: HttpMethod | undefined;
    if (type === "request") {
      const methodEntry = this.#required(f, "method", `one of ${HTTP_METHODS.join(", ")}`);
      if (methodEntry) method = this.#method(methodEntry);
    } else {
      // Optional for streams (Atmo ignores it), and unknowable for an invalid type.
      const methodEntry = e.get("method");
      if (methodEntry && !r.isNull(methodEntry.value)) method = this.#method(methodEntry);
    }

    const state = new Set<string>();
    const stepsEntry = this.#required(f, "steps", 'at least one step, like "- fn: hello"');
    const steps = stepsEntry ? this.#steps(stepsEntry, state) : undefined;

    let response = "";
    const responseEntry = e.get("response");
    const last = steps?.[steps.length - 1];
    if (responseEntry && !r.isNull(responseEntry.value)) {
      const value = r.string(responseEntry, "a state key");
      if (value !== undefined) {
        response = value;
        if (steps && !state.has(value)) {
          r.report(
            responseEntry.at,
            responseEntry.path,
            `no step produces state key ${JSON.stringify(value)}; ` +
              `name a key the steps produce (${available(state)})`,
          );
        }
      }
    } else if (last?.kind === "group") {
      r.report(
        f.at,
        `${path}.response`,
        `is missing; the last step is a group, so name the state key to answer with (${
          available(state)
        })`,
      );
    } else if (last) response = last.as;

    const routeOk = type === "request" && method !== undefined && routeKey !== undefined;
    const base = { steps: steps ?? [], response, location };
    const handler: Handler = type !== "stream"
      ? { type: "request", method: method ?? "GET", resource, ...base }
      : {
        type,
        source,
        resource,
        ...(method ? { method } : {}),
        ...(respondTo !== undefined ? { respondTo } : {}),
        ...base,
      };
    return {
      handler,
      ...(routeOk ? { routeKey: `${method} ${routeKey}`, segments } : {}),
      resourceAt: resourceEntry?.at ?? f.at,
    };
  }

  /**
   * Two request handlers of one method may not match the same paths (Atmo's router panicked
   * at startup), nor name the parameter at one place of a shared prefix differently
   * (`GET /a/:x/b` and `GET /a/:y/c`: Atmo's router, httprouter, refused that too, and one
   * path segment would go by two names).
   */
  #checkRoutes(handlers: readonly HandlerRead[]): void {
    const seen = new Map<string, HandlerRead>();
    /** `METHOD shape-of-prefix` → the first route with a parameter right after that prefix. */
    const params = new Map<string, { read: HandlerRead; name: string }>();
    for (const h of handlers) {
      if (h.routeKey === undefined || h.handler.type !== "request") continue;
      const route = `${h.handler.method} ${h.handler.resource}`;
      const first = seen.get(h.routeKey);
      if (first) {
        const firstRoute = `${first.handler.method} ${first.handler.resource}`;
        const { path: where, line } = first.handler.location;
        this.#r.report(
          h.resourceAt,
          `${h.handler.location.path}.resource`,
          (route === firstRoute
            ? `${route} is already handled by ${where} (line ${line})`
            : `${route} matches the same paths as ${firstRoute} in ${where} (line ${line})`) +
            "; change the method or the resource, or merge the two handlers",
        );
        continue;
      }
      seen.set(h.routeKey, h);
      const segments = h.segments ?? [];
      for (let i = 0; i < segments.length; i++) {
        const segment = segments[i]!;
        if (segment.kind !== "param") continue;
        const prefix = `${h.handler.method} ${routeShape(segments.slice(0, i))}`;
        const other = params.get(prefix);
        if (!other) {
          params.set(prefix, { read: h, name: segment.name });
          continue;
        }
        if (other.name === segment.name) continue;
        const otherRoute = `${other.read.handler.method} ${other.read.handler.resource}`;
        const { path: where, line } = other.read.handler.location;
        const taken = segments.some((s) => s.kind !== "static" && s.name === other.name);
        const renamed = "/" +
          h.handler.resource.slice(1).split("/").map((part, j) => j === i ? `:${other.name}` : part)
            .join("/");
        this.#r.report(
          h.resourceAt,
          `${h.handler.location.path}.resource`,
          `${route} names segment ${i + 1} ":${segment.name}" where ${otherRoute} ` +
            `(${where}, line ${line}) names it ":${other.name}"; routes that share the path ` +
            `before a parameter must give it one name` +
            (taken ? "" : ` (write ${JSON.stringify(renamed)})`),
        );
        break;
      }
    }
  }

  // ---------------------------------------------------------------- steps

  /** Reads steps, checking `with` against `state` and adding each step's keys to it. */
  #steps(entry: Entry, state: Set<string>): Step[] | undefined {
    const r = this.#r;
    const items = r.items(entry.value, entry.at, entry.path, "a list of steps");
    if (!items) return undefined;
    if (items.length === 0) {
      r.report(entry.at, entry.path, 'must list at least one step, like "- fn: hello"');
      return undefined;
    }
    const steps: Step[] = [];
    for (const item of items) {
      const step = this.#step(item.value, item.at, item.path, state);
      if (step) steps.push(step);
    }
    // All or nothing: checks that depend on the whole list (the response) need every step.
    return steps.length === items.length ? steps : undefined;
  }

  #step(node: unknown, at: number, path: string, state: Set<string>): Step | undefined {
    const r = this.#r;
    const f = r.fields(node, at, path, 'a step (a map with "fn" or "group")', STEP_KEYS);
    if (!f) return undefined;
    const e = f.entries;
    const forEach = e.get("forEach");
    if (forEach) {
      r.report(
        forEach.keyAt,
        forEach.path,
        "forEach was removed in Atmo v0.4; loop inside a runnable, or list the calls as steps",
      );
    }
    const fn = e.get("fn");
    const group = e.get("group");
    if (fn && group) {
      r.report(
        f.at,
        path,
        'has both "fn" and "group"; a step is exactly one of them, so split it in two',
      );
      return undefined;
    }
    if (group) {
      let ok = true;
      for (const key of FN_KEYS) {
        const misplaced = e.get(key);
        if (misplaced) {
          ok = false;
          r.report(
            misplaced.keyAt,
            misplaced.path,
            "belongs on each fn inside the group, not on the group; move it onto the fn",
          );
        }
      }
      const items = r.items(group.value, group.at, group.path, "a list of fn steps");
      if (!items) return undefined;
      if (items.length === 0) {
        r.report(group.at, group.path, 'must list at least one fn, like "- fn: hello"');
        return undefined;
      }
      // Members run concurrently: each sees the state before the group, none sees another's.
      const before = new Set(state);
      const members: CallableFn[] = [];
      for (const item of items) {
        const member = r.fields(
          item.value,
          item.at,
          item.path,
          'a fn step (a map with "fn")',
          [...FN_KEYS, "group", "forEach"],
        );
        if (!member) continue;
        const nested = member.entries.get("group") ?? member.entries.get("forEach");
        if (nested) {
          r.report(nested.keyAt, nested.path, `cannot be nested in a group; list fn steps only`);
          continue;
        }
        const callable = this.#callable(member, before, state);
        if (callable) members.push(callable);
      }
      return ok && members.length === items.length ? { kind: "group", group: members } : undefined;
    }
    if (fn) {
      const callable = this.#callable(f, state, state);
      return callable && { kind: "fn", ...callable };
    }
    if (!forEach) {
      r.report(f.at, path, 'needs "fn" (one runnable) or "group" (runnables run together)');
    }
    return undefined;
  }

  /**
   * Reads one runnable call. `with` may reference only keys in `visible`; the call's key
   * (`as`, else `fn`) is added to `produced` even when the call has problems, so one mistake
   * does not cascade into "no state key" problems further down.
   */
  #callable(
    f: Fields,
    visible: ReadonlySet<string>,
    produced: Set<string>,
  ): CallableFn | undefined {
    const r = this.#r;
    const e = f.entries;
    const fnEntry = this.#required(f, "fn", 'a runnable name, like "hello-rs"');
    const fn = fnEntry ? r.string(fnEntry, 'a runnable name like "hello-rs"') : undefined;
    const ref = fn !== undefined && fnEntry ? this.#runnableRef(fn, fnEntry) : undefined;

    let as = fn ?? "";
    const asEntry = e.get("as");
    if (asEntry) {
      const value = r.string(asEntry, "a state key (a non-empty string)");
      if (value !== undefined) as = value;
    }

    const withMap: Record<string, string> = {};
    const withEntry = e.get("with");
    if (withEntry && !r.isNull(withEntry.value)) {
      const w = r.fields(
        withEntry.value,
        withEntry.at,
        withEntry.path,
        "a map of alias: state key",
      );
      for (const arg of w?.entries.values() ?? []) {
        const key = r.string(arg, "a state key (a non-empty string)");
        if (key === undefined) continue;
        if (produced.has(key) && !visible.has(key)) {
          // Group members run together: a sibling's output does not exist yet.
          r.report(
            arg.at,
            arg.path,
            `state key ${JSON.stringify(key)} comes from another fn of this group, and the fns ` +
              `of a group run together; move this fn to a step after the group`,
          );
        } else if (!visible.has(key)) {
          r.report(
            arg.at,
            arg.path,
            `no earlier step produces state key ${JSON.stringify(key)}; ` +
              `name a key produced before this step (${available(visible)})`,
          );
        }
        withMap[arg.key] = key;
      }
    }

    const onErrEntry = e.get("onErr");
    const onErr = onErrEntry && !r.isNull(onErrEntry.value)
      ? this.#onErr(onErrEntry)
      : { codes: {}, other: "return" as const };

    if (as !== "") produced.add(as);

    if (fn === undefined || ref === undefined || onErr === undefined) return undefined;
    return { fn, name: ref.name, namespace: ref.namespace, as, with: withMap, onErr };
  }

  #runnableRef(fn: string, entry: Entry): RunnableRef | undefined {
    const r = this.#r;
    const ref = parseRunnableRef(fn);
    if (!ref) {
      r.report(
        entry.at,
        entry.path,
        `${JSON.stringify(fn)} is not a runnable reference ` +
          `(a name like "hello-rs", optionally "namespace::name")`,
      );
      return undefined;
    }
    let ok = true;
    if (ref.identifier !== undefined && this.#identifier && ref.identifier !== this.#identifier) {
      r.report(
        entry.at,
        entry.path,
        `${JSON.stringify(fn)} names application "${ref.identifier}", ` +
          `but this Directive's identifier is "${this.#identifier}"; leave "${ref.identifier}#" out`,
      );
      ok = false;
    }
    if (ref.version !== undefined && this.#appVersion && ref.version !== this.#appVersion) {
      r.report(
        entry.at,
        entry.path,
        `${JSON.stringify(fn)} names version "${ref.version}", ` +
          `but this Directive's appVersion is "${this.#appVersion}"; leave "@${ref.version}" out`,
      );
      ok = false;
    }
    if (this.#known && !this.#known.has(`${ref.namespace}::${ref.name}`)) {
      const written = ref.namespace === DEFAULT_NAMESPACE && !fn.includes("::")
        ? ref.name
        : `${ref.namespace}::${ref.name}`;
      const guess = closest(written, this.#known.values());
      const hint = guess
        ? ` (did you mean "${guess}"?)`
        : this.#known.size === 0
        ? "; no runnables are available"
        : `; available: ${quoteList(this.#known.values())}`;
      r.report(entry.at, entry.path, `no runnable named ${JSON.stringify(written)}${hint}`);
      ok = false;
    }
    return ok ? ref : undefined;
  }

  #onErr(entry: Entry): ErrorPolicy | undefined {
    const r = this.#r;
    const f = r.fields(
      entry.value,
      entry.at,
      entry.path,
      "a map like {any: continue} or {code: {404: continue}, other: return}",
      ON_ERR_KEYS,
    );
    if (!f) return undefined;
    let ok = true;
    const action = (e: Entry): ErrorAction | undefined => {
      const value = this.#oneOf(e, ERROR_ACTIONS, "an error action");
      if (value === undefined) ok = false;
      return value;
    };
    const codeEntry = f.entries.get("code");
    const anyEntry = f.entries.get("any");
    const otherEntry = f.entries.get("other");
    const codes: Record<number, ErrorAction> = {};
    let other: ErrorAction = "return";
    if (codeEntry) {
      const c = r.fields(
        codeEntry.value,
        codeEntry.at,
        codeEntry.path,
        "a map of status code: action",
      );
      if (!c) ok = false;
      for (const e of c?.entries.values() ?? []) {
        const code = Number(e.key);
        if (!/^\d{3}$/.test(e.key) || code < 100 || code > 599) {
          r.report(
            e.keyAt,
            e.path,
            `${JSON.stringify(e.key)} is not an HTTP status code (100-599)`,
          );
          ok = false;
          continue;
        }
        const a = action(e);
        if (a) codes[code] = a;
      }
      if (c && c.entries.size === 0) {
        r.report(codeEntry.at, codeEntry.path, 'must list at least one code, like "404: continue"');
        ok = false;
      }
    }
    if (anyEntry) {
      if (codeEntry) {
        r.report(anyEntry.keyAt, anyEntry.path, 'cannot be used with "code"; use "other" instead');
        ok = false;
      } else other = action(anyEntry) ?? other;
    }
    if (otherEntry) {
      if (!codeEntry) {
        r.report(
          otherEntry.keyAt,
          otherEntry.path,
          'needs "code"; without codes use "any" instead',
        );
        ok = false;
      } else other = action(otherEntry) ?? other;
    }
    return ok ? { codes, other } : undefined;
  }

  // ---------------------------------------------------------------- schedules

  #schedule(node: unknown, at: number, path: string): Schedule | undefined {
    const r = this.#r;
    const f = r.fields(node, at, path, "a schedule (a map of name, every, steps)", SCHEDULE_KEYS);
    if (!f) return undefined;
    const location = this.#location(f.at, path);
    const nameEntry = this.#required(f, "name", "a name for the schedule");
    const name = nameEntry ? r.string(nameEntry, "a name (a non-empty string)") : undefined;

    let every: ScheduleEvery | undefined;
    const everyEntry = this.#required(f, "every", "a period, like {minutes: 5}");
    if (everyEntry) {
      const ev = r.fields(
        everyEntry.value,
        everyEntry.at,
        everyEntry.path,
        "a map of seconds, minutes, hours, days",
        EVERY_KEYS,
      );
      if (ev) {
        const parts = { seconds: 0, minutes: 0, hours: 0, days: 0 };
        let ok = true;
        for (const key of EVERY_KEYS) {
          const e = ev.entries.get(key);
          if (!e) continue;
          const n = r.count(e);
          if (n === undefined) ok = false;
          else parts[key] = n;
        }
        if (ok && Object.values(parts).every((n) => n === 0)) {
          r.report(
            everyEntry.at,
            everyEntry.path,
            "needs at least one of seconds, minutes, hours, days above 0",
          );
        } else if (ok) every = parts;
      }
    }

    const state: Record<string, string> = {};
    const stateEntry = f.entries.get("state");
    if (stateEntry && !r.isNull(stateEntry.value)) {
      const s = r.fields(stateEntry.value, stateEntry.at, stateEntry.path, "a map of key: value");
      for (const e of s?.entries.values() ?? []) {
        const value = r.text(e, "a value (text or a number)");
        if (value !== undefined) state[e.key] = value;
      }
    }

    const keys = new Set(Object.keys(state));
    const stepsEntry = this.#required(f, "steps", 'at least one step, like "- fn: hello"');
    const steps = stepsEntry ? this.#steps(stepsEntry, keys) : undefined;
    if (name === undefined || every === undefined || steps === undefined) return undefined;
    const everySeconds = every.seconds +
      60 * (every.minutes + 60 * (every.hours + 24 * every.days));
    return { name, every, everySeconds, state, steps, location };
  }

  // ---------------------------------------------------------------- other sections

  #connectionsOf(entry: Entry | undefined): Connections {
    const r = this.#r;
    if (!entry || r.isNull(entry.value)) return {};
    const f = r.fields(
      entry.value,
      entry.at,
      entry.path,
      "a map of nats, kafka, database, redis",
      CONNECTION_KEYS,
    );
    if (!f) return {};
    const out: {
      -readonly [K in keyof Connections]: Connections[K];
    } = {};
    const address = (key: "serverAddress" | "brokerAddress", c: Entry) => {
      const keys = key === "serverAddress" ? DIRECTIVE_KEYS.nats : DIRECTIVE_KEYS.kafka;
      const m = r.fields(c.value, c.at, c.path, `a map with ${key}`, keys);
      const e = m && this.#required(m, key, `the server's address, like "nats://localhost:4222"`);
      return e && r.string(e, "an address (a non-empty string)");
    };
    const nats = f.entries.get("nats");
    if (nats) {
      const serverAddress = address("serverAddress", nats);
      if (serverAddress) out.nats = { serverAddress };
    }
    const kafka = f.entries.get("kafka");
    if (kafka) {
      const brokerAddress = address("brokerAddress", kafka);
      if (brokerAddress) out.kafka = { brokerAddress };
    }
    const database = f.entries.get("database");
    if (database) {
      const m = r.fields(
        database.value,
        database.at,
        database.path,
        "a map of type, connectionString",
        DIRECTIVE_KEYS.database,
      );
      if (m) {
        const typeEntry = this.#required(m, "type", '"mysql" or "postgresql"');
        const type = typeEntry &&
          this.#oneOf(typeEntry, ["mysql", "postgresql"] as const, "a database type");
        const csEntry = this.#required(m, "connectionString", "the database connection string");
        const connectionString = csEntry && r.string(csEntry, "a connection string");
        if (type && connectionString) out.database = { type, connectionString };
      }
    }
    const redis = f.entries.get("redis");
    if (redis) {
      const m = r.fields(
        redis.value,
        redis.at,
        redis.path,
        "a map of serverAddress, username, password",
        DIRECTIVE_KEYS.redis,
      );
      if (m) {
        const addressEntry = this.#required(
          m,
          "serverAddress",
          'the address, like "localhost:6379"',
        );
        const serverAddress = addressEntry && r.string(addressEntry, "an address");
        const user = m.entries.get("username");
        const password = m.entries.get("password");
        const username = user && r.string(user, "a user name", false);
        const pass = password && r.string(password, "a password", false);
        if (serverAddress) {
          out.redis = {
            serverAddress,
            ...(username !== undefined ? { username } : {}),
            ...(pass !== undefined ? { password: pass } : {}),
          };
        }
      }
    }
    return out;
  }

  #authentication(entry: Entry | undefined): Authentication {
    const r = this.#r;
    const domains: Record<string, DomainAuth> = {};
    if (!entry || r.isNull(entry.value)) return { domains };
    const f = r.fields(
      entry.value,
      entry.at,
      entry.path,
      "a map with domains",
      DIRECTIVE_KEYS.authentication,
    );
    const d = f?.entries.get("domains");
    if (!d || r.isNull(d.value)) return { domains };
    const m = r.fields(d.value, d.at, d.path, "a map of domain: {headerType, value}");
    for (const domain of m?.entries.values() ?? []) {
      const h = r.fields(
        domain.value,
        domain.at,
        domain.path,
        "a map of headerType, value",
        DIRECTIVE_KEYS.domainAuth,
      );
      if (!h) continue;
      const typeEntry = h.entries.get("headerType");
      const headerType = typeEntry && !r.isNull(typeEntry.value)
        ? r.string(typeEntry, 'a header type like "bearer"')
        : "bearer";
      const valueEntry = this.#required(h, "value", "the header value");
      const value = valueEntry && r.string(valueEntry, "the header value (a non-empty string)");
      if (headerType !== undefined && value !== undefined) {
        domains[domain.key] = { headerType, value };
      }
    }
    return { domains };
  }

  #query(node: unknown, at: number, path: string): Query | undefined {
    const r = this.#r;
    const f = r.fields(node, at, path, "a query (a map of name, query)", QUERY_KEYS);
    if (!f) return undefined;
    const nameEntry = this.#required(f, "name", "the name runnables call the query by");
    const name = nameEntry && r.string(nameEntry, "a name (a non-empty string)");
    const queryEntry = this.#required(f, "query", "the SQL text");
    const query = queryEntry && r.string(queryEntry, "SQL text");
    const typeEntry = f.entries.get("type");
    const type = typeEntry && !r.isNull(typeEntry.value)
      ? this.#oneOf(typeEntry, QUERY_TYPES, "a query type")
      : undefined;
    const countEntry = f.entries.get("varCount");
    const varCount = countEntry && !r.isNull(countEntry.value) ? r.count(countEntry) : undefined;
    if (!name || !query) return undefined;
    return {
      name,
      query,
      ...(type ? { type } : {}),
      ...(varCount !== undefined ? { varCount } : {}),
    };
  }

  #runnable(node: unknown, at: number, path: string): RunnableEntry | undefined {
    const r = this.#r;
    const f = r.fields(node, at, path, "a runnable (a map of name, namespace, ...)", RUNNABLE_KEYS);
    if (!f) return undefined;
    const nameEntry = this.#required(f, "name", "the runnable's name");
    const name = nameEntry && r.string(nameEntry, "a name (a non-empty string)");
    const out: Record<string, string> = {};
    for (const key of RUNNABLE_KEYS) {
      const e = f.entries.get(key);
      if (!e || key === "name" || r.isNull(e.value)) continue;
      const value = r.text(e, "text");
      if (value !== undefined) out[key] = value;
    }
    if (!name) return undefined;
    return { ...out, name, namespace: out.namespace ?? DEFAULT_NAMESPACE };
  }
}
