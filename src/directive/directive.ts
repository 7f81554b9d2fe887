/**
 * The resolved Directive: what {@link parseDirective} returns once a Directive.yaml (Suborbital
 * Atmo v0.4's format) has been validated. Every default is applied here, once; consumers never
 * look at the YAML and never re-apply a default. Every object is deeply frozen.
 *
 * @module
 */

/** HTTP methods a request handler may declare (RFC 9110 §9.3, plus PATCH from RFC 5789). */
export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/** One of {@link HTTP_METHODS}; upper case, as HTTP methods are case-sensitive (RFC 9110 §9.1). */
export type HttpMethod = typeof HTTP_METHODS[number];

/** What to do when a runnable returns an error: go on with the next step, or answer now. */
export type ErrorAction = "continue" | "return";

/** Where a handler or schedule was declared, for log lines and runtime errors. */
export interface SourceLocation {
  /** The file name given to the parser, e.g. `Directive.yaml`. */
  readonly file: string;
  /** 1-based line. */
  readonly line: number;
  /** 1-based column. */
  readonly column: number;
  /** Path inside the Directive, e.g. `handlers[2]`. */
  readonly path: string;
}

/**
 * A step's `onErr`, resolved. `{any: continue}` becomes `{codes: {}, other: "continue"}`;
 * no `onErr` at all becomes `{codes: {}, other: "return"}` (Atmo's default: any error ends the
 * handler).
 */
export interface ErrorPolicy {
  /** Action per error code the runnable returns (an HTTP status, 100-599). */
  readonly codes: Readonly<Record<number, ErrorAction>>;
  /** Action for every code not listed in `codes`. */
  readonly other: ErrorAction;
}

/** One runnable call: a `fn` step, or one member of a `group`. */
export interface CallableFn {
  /**
   * The runnable reference as written: `name`, `namespace::name`, or a fully qualified
   * `identifier#namespace::name@version`.
   */
  readonly fn: string;
  /** Runnable name without identifier, namespace or version. */
  readonly name: string;
  /** Namespace; `"default"` when the reference names none. */
  readonly namespace: string;
  /** State key the output is stored under: `as`, or `fn` when `as` is absent. */
  readonly as: string;
  /** Input aliases: alias the runnable sees → state key it reads. Empty when absent. */
  readonly with: Readonly<Record<string, string>>;
  /** Error handling, defaults applied. */
  readonly onErr: ErrorPolicy;
}

/** A step that calls one runnable. */
export interface FnStep extends CallableFn {
  /** Discriminant. */
  readonly kind: "fn";
}

/** A step that calls several runnables concurrently; each sees only the state before the group. */
export interface GroupStep {
  /** Discriminant. */
  readonly kind: "group";
  /** The runnables, in declaration order (never empty). */
  readonly group: readonly CallableFn[];
}

/** One step of a handler or schedule. (Atmo v0.4 removed `forEach`; it is refused.) */
export type Step = FnStep | GroupStep;

/** Fields shared by both handler types. */
export interface HandlerBase {
  /** The steps, in order (never empty). */
  readonly steps: readonly Step[];
  /**
   * State key whose value is the response: `response` as written, or else the last step's
   * `as` (a Directive whose last step is a group must name it).
   */
  readonly response: string;
  /** Where the handler is declared. */
  readonly location: SourceLocation;
}

/** An HTTP route: `method resource` → steps. */
export interface RequestHandler extends HandlerBase {
  /** Discriminant; `type` defaults to `"request"`. */
  readonly type: "request";
  /** The HTTP method. */
  readonly method: HttpMethod;
  /**
   * The route, starting with `/`; segments may be `:name` (one non-empty segment) and a
   * trailing `*name` (the rest of the path). See {@link RouteTable} for matching.
   */
  readonly resource: string;
}

/** A stream handler (validated now; served by a later issue). */
export interface StreamHandler extends HandlerBase {
  /** Discriminant. */
  readonly type: "stream";
  /** Where messages come from; default `"server"` (a WebSocket on `resource`). */
  readonly source: "server" | "nats";
  /** A path for `source: server`, a subject for `source: nats`. */
  readonly resource: string;
  /** The method, when one is written (Atmo ignores it for streams). */
  readonly method?: HttpMethod;
  /** Subject to publish results to, if any. */
  readonly respondTo?: string;
}

/** A handler: an HTTP route or a stream. */
export type Handler = RequestHandler | StreamHandler;

/** A schedule's period; at least one field is positive. */
export interface ScheduleEvery {
  /** Seconds (default 0). */
  readonly seconds: number;
  /** Minutes (default 0). */
  readonly minutes: number;
  /** Hours (default 0). */
  readonly hours: number;
  /** Days (default 0). */
  readonly days: number;
}

/** Steps run on a timer (validated now; run by a later issue). */
export interface Schedule {
  /** Name, unique by convention. */
  readonly name: string;
  /** The period as written, defaults applied. */
  readonly every: ScheduleEvery;
  /** The period in seconds, summed over `every`. */
  readonly everySeconds: number;
  /** Initial state: key → value. Empty when absent. */
  readonly state: Readonly<Record<string, string>>;
  /** The steps (never empty). */
  readonly steps: readonly Step[];
  /** Where the schedule is declared. */
  readonly location: SourceLocation;
}

/** External connections runnables may use (validated now; used by a later issue). */
export interface Connections {
  /** A NATS server, required by `source: nats` streams. */
  readonly nats?: { readonly serverAddress: string };
  /** A Kafka broker. */
  readonly kafka?: { readonly brokerAddress: string };
  /** A SQL database for `queries`. */
  readonly database?: {
    readonly type: "mysql" | "postgresql";
    readonly connectionString: string;
  };
  /** A Redis cache. */
  readonly redis?: {
    readonly serverAddress: string;
    readonly username?: string;
    readonly password?: string;
  };
}

/** An auth header added to runnables' outgoing HTTP requests to one domain. */
export interface DomainAuth {
  /** Header scheme; default `"bearer"`. */
  readonly headerType: string;
  /** The header value (never empty). */
  readonly value: string;
}

/** Credentials runnables' HTTP requests carry (validated now; used by a later issue). */
export interface Authentication {
  /** Domain → header. Empty when absent. */
  readonly domains: Readonly<Record<string, DomainAuth>>;
}

/** A named database query runnables may run (validated now; used by a later issue). */
export interface Query {
  /** Name runnables call it by. */
  readonly name: string;
  /** The SQL text. */
  readonly query: string;
  /** Query kind when written; Atmo infers it from the SQL otherwise. */
  readonly type?: "insert" | "select" | "update" | "delete";
  /** Number of bind variables when written; Atmo counts them otherwise. */
  readonly varCount?: number;
}

/** A runnable entry as Subo writes it into a bundled Directive. */
export interface RunnableEntry {
  /** Runnable name. */
  readonly name: string;
  /** Namespace; default `"default"`. */
  readonly namespace: string;
  /** Source language, e.g. `"rust"`. */
  readonly lang?: string;
  /** Runnable version. */
  readonly version?: string;
  /** Suborbital API version it was built against. */
  readonly apiVersion?: string;
  /** Fully qualified function name. */
  readonly fqfn?: string;
}

/**
 * A validated Directive with every default applied, deeply frozen.
 *
 * @example
 * ```ts
 * const directive = parseDirective(text, { file: "Directive.yaml" });
 * for (const h of directive.handlers) if (h.type === "request") console.log(h.method, h.resource);
 * ```
 */
export interface Directive {
  /** The file name given to the parser. */
  readonly file: string;
  /** Reverse-DNS application identifier, e.g. `com.suborbital.stratos-demo`. */
  readonly identifier: string;
  /** Application version, semver with a leading `v`. */
  readonly appVersion: string;
  /** Atmo version the Directive targets, semver with a leading `v`. */
  readonly atmoVersion: string;
  /**
   * Headless mode (every runnable reachable by its FQFN over HTTP). Default false: closed,
   * only the declared handlers are reachable.
   */
  readonly headless: boolean;
  /** Handlers in declaration order. Empty when absent. */
  readonly handlers: readonly Handler[];
  /** Schedules in declaration order. Empty when absent. */
  readonly schedules: readonly Schedule[];
  /** Connections; `{}` when absent. */
  readonly connections: Connections;
  /** Authentication; `{domains: {}}` when absent. */
  readonly authentication: Authentication;
  /**
   * Capabilities exactly as written (a map), or undefined when absent. Their schema and
   * defaults belong to the Wasm host, which validates them (a later issue).
   */
  readonly capabilities?: Readonly<Record<string, unknown>>;
  /** Database queries. Empty when absent. */
  readonly queries: readonly Query[];
  /** Runnables Subo listed. Empty when absent (an unbundled project Directive). */
  readonly runnables: readonly RunnableEntry[];
}
