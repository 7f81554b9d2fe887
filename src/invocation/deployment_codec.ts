/**
 * What the proxy delivers to its sats, and the checks the receiver applies: the proxy is the
 * source of truth for runnables, static files and the host configuration runnables run under;
 * sats need nothing but the forwarding address.
 *
 * A deployment travels as BLOB messages (one per file the sat does not hold yet, each named by
 * the SHA-256 of its content and checked on arrival), then one DEPLOY carrying the
 * {@linkcode DeployManifest} as JSON; the sat answers READY with the functions it now runs, or
 * an error. Message layouts are in invocation_codec.ts. Every field is checked strictly: a
 * wrong shape throws InvocationProtocolError and the channel ends.
 *
 * @module
 */

import { InvocationProtocolError } from "./invocation_codec.ts";
import type { Hello } from "./invocation_codec.ts";

/** Largest file one BLOB delivers: 64 MiB. */
export const MAX_BLOB_BYTES: number = 64 * 1024 * 1024;
/** Largest manifest: 4 MiB of JSON. */
export const MAX_MANIFEST_BYTES: number = 4 * 1024 * 1024;

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A fn key: `NAME` or `ns::NAME`. */
const FN_KEY = /^(?:[A-Za-z0-9_.-]+::)?[A-Za-z0-9_.-]+$/;
/** A static file's path: relative, `/`-separated, no `.` or `..` segment. */
const STATIC_PATH = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[^/\0][^\0]*$/;

/** Header of a BLOB: the content's digest and size. */
export interface BlobHeader {
  /** SHA-256 of the content, lower-case hex. */
  readonly sha256: string;
  /** Bytes of content. */
  readonly size: number;
}

/** Header of a DEPLOY: the size of the manifest JSON that follows. */
export interface DeployHeader {
  readonly size: number;
}

/** The host configuration runnables run under, from the Directive. */
export interface SatConfig {
  /** Hosts `fetch_url` / `graphql_query` may reach (`capabilities.http.rules.allowedDomains`). */
  readonly allowedHosts: readonly string[];
  /** `Authorization` value per host (`authentication.domains`, `env(NAME)` resolved). */
  readonly authHeaders: Readonly<Record<string, string>>;
  /** `connections.redis`, values resolved: backs the cache. */
  readonly redis?: {
    readonly serverAddress: string;
    readonly username?: string;
    readonly password?: string;
  };
  /** `connections.database`, values resolved: backs `db_exec`. */
  readonly database?: { readonly type: string; readonly connectionString: string };
  /** The named queries `db_exec` may run. */
  readonly queries: readonly {
    readonly name: string;
    readonly query: string;
    readonly type?: "insert" | "select" | "update" | "delete";
    readonly varCount?: number;
  }[];
}

/** What a sat should run: files by digest, and the configuration. */
export interface DeployManifest {
  /** Runnables by fn key → SHA-256 of the module. */
  readonly runnables: Readonly<Record<string, string>>;
  /** Static files (for `get_static_file`) by relative path → SHA-256. */
  readonly static: Readonly<Record<string, string>>;
  readonly config: SatConfig;
}

/** A sat's answer to a DEPLOY. */
export type ReadyReport =
  | {
    readonly ok: true;
    readonly functions: Readonly<Record<string, string>>;
    /** Those of `functions` whose modules never read the request (see Hello). */
    readonly requestless?: readonly string[];
  }
  | { readonly ok: false; readonly error: string };

/** SHA-256 of `bytes`, lower-case hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return new Uint8Array(digest).toHex();
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fail(what: string): never {
  throw new InvocationProtocolError(`${what} has the wrong shape`);
}

function digestMap(value: unknown, keys: RegExp, what: string): Record<string, string> {
  if (!isRecord(value)) fail(what);
  for (const [key, digest] of Object.entries(value)) {
    if (!keys.test(key) || typeof digest !== "string" || !SHA256_HEX.test(digest)) fail(what);
  }
  return value as Record<string, string>;
}

function stringList(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) fail(what);
  return value;
}

function optionalString(value: unknown, what: string): void {
  if (value !== undefined && typeof value !== "string") fail(what);
}

/** Checks a HELLO's JSON. */
export function checkHello(value: unknown): Hello {
  if (!isRecord(value)) fail("HELLO");
  const functions = fnKeys(value.functions, "HELLO");
  const hello: { -readonly [K in keyof Hello]: Hello[K] } = { functions };
  if (value.digests !== undefined) hello.digests = digestMap(value.digests, FN_KEY, "HELLO");
  if (value.cached !== undefined) {
    hello.cached = stringList(value.cached, "HELLO");
    if (!hello.cached.every((d) => SHA256_HEX.test(d))) fail("HELLO");
  }
  if (value.delivery !== undefined) {
    if (typeof value.delivery !== "boolean") fail("HELLO");
    hello.delivery = value.delivery;
  }
  if (value.requestless !== undefined) hello.requestless = fnKeys(value.requestless, "HELLO");
  return hello;
}

function fnKeys(value: unknown, what: string): string[] {
  const keys = stringList(value, what);
  if (!keys.every((f) => FN_KEY.test(f))) fail(what);
  return keys;
}

/** Checks a BLOB header. */
export function checkBlobHeader(value: unknown): BlobHeader {
  if (
    !isRecord(value) || typeof value.sha256 !== "string" || !SHA256_HEX.test(value.sha256) ||
    !Number.isSafeInteger(value.size) || (value.size as number) < 0 ||
    (value.size as number) > MAX_BLOB_BYTES
  ) {
    fail("BLOB header");
  }
  return { sha256: value.sha256, size: value.size as number };
}

/** Checks a DEPLOY header. */
export function checkDeployHeader(value: unknown): DeployHeader {
  if (
    !isRecord(value) || !Number.isSafeInteger(value.size) || (value.size as number) < 2 ||
    (value.size as number) > MAX_MANIFEST_BYTES
  ) {
    fail("DEPLOY header");
  }
  return { size: value.size as number };
}

/** Checks a READY report. */
export function checkReadyReport(value: unknown): ReadyReport {
  if (isRecord(value) && typeof value.error === "string") {
    return { ok: false, error: value.error };
  }
  if (!isRecord(value)) fail("READY");
  const functions = digestMap(value.functions, FN_KEY, "READY");
  return value.requestless === undefined
    ? { ok: true, functions }
    : { ok: true, functions, requestless: fnKeys(value.requestless, "READY") };
}

/** Checks a manifest's JSON (the bytes a DEPLOY carries, decoded). */
export function checkManifest(value: unknown): DeployManifest {
  if (!isRecord(value) || !isRecord(value.config)) fail("DEPLOY manifest");
  const runnables = digestMap(value.runnables, FN_KEY, "DEPLOY manifest");
  const files = digestMap(value.static, STATIC_PATH, "DEPLOY manifest");
  const c = value.config;
  const allowedHosts = stringList(c.allowedHosts, "DEPLOY config");
  if (
    !isRecord(c.authHeaders) || !Object.values(c.authHeaders).every((v) => typeof v === "string")
  ) {
    fail("DEPLOY config");
  }
  const config: { -readonly [K in keyof SatConfig]: SatConfig[K] } = {
    allowedHosts,
    authHeaders: c.authHeaders as Record<string, string>,
    queries: [],
  };
  if (c.redis !== undefined) {
    if (!isRecord(c.redis) || typeof c.redis.serverAddress !== "string") fail("DEPLOY config");
    optionalString(c.redis.username, "DEPLOY config");
    optionalString(c.redis.password, "DEPLOY config");
    config.redis = c.redis as SatConfig["redis"];
  }
  if (c.database !== undefined) {
    if (
      !isRecord(c.database) || typeof c.database.type !== "string" ||
      typeof c.database.connectionString !== "string"
    ) fail("DEPLOY config");
    config.database = c.database as SatConfig["database"];
  }
  if (!Array.isArray(c.queries)) fail("DEPLOY config");
  for (const q of c.queries as unknown[]) {
    if (
      !isRecord(q) || typeof q.name !== "string" || typeof q.query !== "string" ||
      (q.type !== undefined &&
        !["insert", "select", "update", "delete"].includes(q.type as string)) ||
      (q.varCount !== undefined && !Number.isSafeInteger(q.varCount))
    ) fail("DEPLOY config");
  }
  config.queries = c.queries as SatConfig["queries"];
  return { runnables, static: files, config };
}
