/**
 * The keys each section of a Directive.yaml accepts, in one table: the validator rejects every
 * other key, and the JSON Schema for editors (`schema/directive.schema.json`) is tested against
 * this table so the two cannot drift.
 *
 * @module
 */

/**
 * Accepted keys per Directive section (Atmo v0.4's schema as Stratos accepts it).
 *
 * `step` includes `forEach` only so that it can be refused with Atmo v0.4's explanation (it
 * was removed) instead of as an unknown key. `capabilities` is absent: its keys are kept as
 * written and belong to the Wasm host.
 *
 * @example
 * ```ts
 * DIRECTIVE_KEYS.handler.includes("resource"); // true
 * ```
 */
export const DIRECTIVE_KEYS: {
  readonly directive: readonly string[];
  readonly handler: readonly string[];
  readonly fn: readonly string[];
  readonly step: readonly string[];
  readonly onErr: readonly string[];
  readonly schedule: readonly string[];
  readonly every: readonly string[];
  readonly connections: readonly string[];
  readonly nats: readonly string[];
  readonly kafka: readonly string[];
  readonly database: readonly string[];
  readonly redis: readonly string[];
  readonly authentication: readonly string[];
  readonly domainAuth: readonly string[];
  readonly query: readonly string[];
  readonly runnable: readonly string[];
} = Object.freeze({
  directive: Object.freeze([
    "identifier",
    "appVersion",
    "atmoVersion",
    "headless",
    "handlers",
    "schedules",
    "authentication",
    "connections",
    "capabilities",
    "queries",
    "runnables",
  ]),
  handler: Object.freeze([
    "type",
    "resource",
    "method",
    "steps",
    "response",
    "source",
    "respondTo",
  ]),
  fn: Object.freeze(["fn", "as", "with", "onErr"]),
  step: Object.freeze(["fn", "as", "with", "onErr", "group", "forEach"]),
  onErr: Object.freeze(["code", "any", "other"]),
  schedule: Object.freeze(["name", "every", "state", "steps"]),
  every: Object.freeze(["seconds", "minutes", "hours", "days"]),
  connections: Object.freeze(["nats", "kafka", "database", "redis"]),
  nats: Object.freeze(["serverAddress"]),
  kafka: Object.freeze(["brokerAddress"]),
  database: Object.freeze(["type", "connectionString"]),
  redis: Object.freeze(["serverAddress", "username", "password"]),
  authentication: Object.freeze(["domains"]),
  domainAuth: Object.freeze(["headerType", "value"]),
  query: Object.freeze(["name", "query", "type", "varCount"]),
  runnable: Object.freeze(["name", "namespace", "lang", "version", "apiVersion", "fqfn"]),
});

/**
 * Paths the proxy serves itself, before any Directive route is consulted: a handler on one
 * of them could never be reached, so the validator refuses it.
 */
export const RESERVED_PATHS: readonly string[] = Object.freeze(["/metrics", "/health", "/ready"]);
