/**
 * A deployment: everything a proxy's sats receive for one version of the Directive. The proxy
 * is the source of truth: every fn its handlers and schedules name must resolve to a runnable
 * file (see runnable_locator.ts), or the Directive is invalid, with a did-you-mean. Files travel
 * content-addressed by SHA-256; static files come from `static/` beside the Directive; the
 * host configuration (allowed hosts, per-domain auth headers, connections, queries) comes from
 * the Directive with `env(NAME)` values resolved here.
 *
 * @module
 */

import { dirname, join, relative } from "node:path";
import {
  type CallableFn,
  type Directive,
  DirectiveError,
  loadDirectiveFile,
  type Step,
} from "../directive/mod.ts";
import { type DeployManifest, type SatConfig, sha256Hex } from "../invocation/mod.ts";
import { fnKey, RunnableLocator } from "./runnable_locator.ts";

/** Largest runnable module the proxy delivers: 64 MiB. */
export const MAX_RUNNABLE_BYTES: number = 64 * 1024 * 1024;
/** Most files under `static/`. */
export const MAX_STATIC_FILES = 1000;
/** Most bytes of all files under `static/` together: 64 MiB. */
export const MAX_STATIC_BYTES: number = 64 * 1024 * 1024;

/** One version of what the sats run. */
export interface Deployment {
  readonly directive: Directive;
  readonly manifest: DeployManifest;
  /** Content of every file of the manifest, by SHA-256. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  /** The runnable files read, by fn key (the proxy watches them). */
  readonly sources: ReadonlyMap<string, string>;
}

/** Options of {@linkcode loadDeployment}. */
export interface LoadDeploymentOptions {
  /** `--runnables DIR`: where runnables are, instead of beside the Directive. */
  readonly runnablesDir?: string;
  /** Reads `env(NAME)` values; default `Deno.env.get`. */
  readonly env?: (name: string) => string | undefined;
}

const ENV_REF = /^env\(([A-Za-z_][A-Za-z0-9_]*)\)$/;

/**
 * Reads the Directive at `path`, resolves every runnable it names and the static files beside
 * it, and builds the manifest sats receive.
 *
 * @throws DirectiveError when the Directive is invalid, or names an fn no file provides
 * @throws Error when a file cannot be read, is too large, or an `env(NAME)` is not set
 */
export async function loadDeployment(
  path: string,
  options: LoadDeploymentOptions = {},
): Promise<Deployment> {
  const locator = new RunnableLocator(dirname(path), options.runnablesDir);
  let directive = await loadDirectiveFile(path);
  const keys = new Set(usedFunctions(directive).map(fnKey));
  if (directive.headless) { for (const key of await locator.list()) keys.add(key); }
  const sources = new Map<string, string>();
  const missing: string[] = [];
  for (const key of keys) {
    const file = await locator.find(key);
    if (file === undefined) missing.push(key);
    else sources.set(key, file);
  }
  if (missing.length > 0) {
    // Parse again knowing what exists: each missing fn is reported where it is written, with
    // a did-you-mean among the runnables that are there.
    const available = [...new Set([...sources.keys(), ...await locator.list()])];
    directive = await loadDirectiveFile(path, { runnables: available });
    throw new DirectiveError(path, [{
      file: path,
      line: 1,
      column: 1,
      path: "",
      message: `no runnable file for ${missing.map((k) => `"${k}"`).join(", ")}; looked in ` +
        locator.candidates(missing[0]!).join(", "),
    }]);
  }
  const files = new Map<string, Uint8Array>();
  const runnables: Record<string, string> = {};
  for (const [key, file] of [...sources].sort(([a], [b]) => a.localeCompare(b))) {
    const bytes = await readBounded(file, MAX_RUNNABLE_BYTES);
    const sha256 = await sha256Hex(bytes);
    files.set(sha256, bytes);
    runnables[key] = sha256;
  }
  const staticFiles: Record<string, string> = {};
  for (const [name, bytes] of await readStaticDir(join(dirname(path), "static"))) {
    const sha256 = await sha256Hex(bytes);
    files.set(sha256, bytes);
    staticFiles[name] = sha256;
  }
  const manifest: DeployManifest = {
    runnables,
    static: staticFiles,
    config: satConfig(directive, options.env ?? ((name) => Deno.env.get(name))),
  };
  return { directive, manifest, files, sources };
}

/** Every fn the handlers and schedules of `directive` call. */
function usedFunctions(directive: Directive): CallableFn[] {
  const steps: Step[] = [
    ...directive.handlers.flatMap((h) => h.steps),
    ...directive.schedules.flatMap((s) => s.steps),
  ];
  return steps.flatMap((step) => step.kind === "fn" ? [step] : step.group);
}

/** The host configuration of `directive`, `env(NAME)` values read. */
function satConfig(directive: Directive, env: (name: string) => string | undefined): SatConfig {
  const resolve = (value: string, where: string): string => {
    const ref = ENV_REF.exec(value);
    if (!ref) return value;
    const name = ref[1]!;
    let found: string | undefined;
    try {
      found = env(name);
    } catch (error) {
      throw new Error(
        `${directive.file}: ${where}: cannot read environment variable ${name} (${
          (error as Error).message
        }); allow it with --allow-env`,
        { cause: error },
      );
    }
    if (found === undefined) {
      throw new Error(
        `${directive.file}: ${where}: env(${name}) is not set; export ${name} before starting ` +
          "the proxy",
      );
    }
    return found;
  };
  const authHeaders: Record<string, string> = {};
  for (const [host, auth] of Object.entries(directive.authentication.domains)) {
    const value = resolve(auth.value, `authentication.domains.${host}.value`);
    authHeaders[host.toLowerCase()] = `${capitalize(auth.headerType)} ${value}`;
  }
  const { redis, database } = directive.connections;
  const config: { -readonly [K in keyof SatConfig]: SatConfig[K] } = {
    allowedHosts: allowedHosts(directive.capabilities),
    authHeaders,
    queries: directive.queries.map((q) => ({ ...q })),
  };
  if (redis) {
    config.redis = {
      serverAddress: resolve(redis.serverAddress, "connections.redis.serverAddress"),
      ...(redis.username === undefined
        ? {}
        : { username: resolve(redis.username, "connections.redis.username") }),
      ...(redis.password === undefined
        ? {}
        : { password: resolve(redis.password, "connections.redis.password") }),
    };
  }
  if (database) {
    config.database = {
      type: database.type,
      connectionString: resolve(
        database.connectionString,
        "connections.database.connectionString",
      ),
    };
  }
  return config;
}

/** `bearer` → `Bearer`: the scheme as HTTP writes it. */
function capitalize(scheme: string): string {
  return scheme.length === 0 ? scheme : scheme[0]!.toUpperCase() + scheme.slice(1);
}

/**
 * Hosts runnables may reach, from Atmo's `capabilities.http.rules.allowedDomains` (absent:
 * none; Stratos denies by default where Atmo allowed everything). `capabilities.http.enabled:
 * false` allows none.
 */
function allowedHosts(capabilities: Directive["capabilities"]): string[] {
  const http = capabilities?.http as Record<string, unknown> | undefined;
  if (!http || http.enabled === false) return [];
  const rules = http.rules as Record<string, unknown> | undefined;
  const domains = rules?.allowedDomains;
  return Array.isArray(domains) ? domains.filter((d): d is string => typeof d === "string") : [];
}

async function readBounded(file: string, max: number): Promise<Uint8Array> {
  const info = await Deno.stat(file);
  if (info.size > max) {
    throw new RangeError(`${file} is ${info.size} bytes; at most ${max} can be delivered`);
  }
  return await Deno.readFile(file);
}

/** Files under `dir` (absent: none) by `/`-separated relative path; symbolic links refused. */
async function readStaticDir(dir: string): Promise<Map<string, Uint8Array>> {
  const found = new Map<string, Uint8Array>();
  let total = 0;
  const walk = async (at: string): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(at));
    } catch (error) {
      if (at === dir && error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const full = join(at, entry.name);
      if (entry.isSymlink) {
        throw new Error(`${full} is a symbolic link; copy the file into static/ instead`);
      }
      if (entry.isDirectory) {
        await walk(full);
        continue;
      }
      if (!entry.isFile) continue;
      if (found.size >= MAX_STATIC_FILES) {
        throw new RangeError(`${dir} holds more than ${MAX_STATIC_FILES} files`);
      }
      const bytes = await readBounded(full, MAX_STATIC_BYTES);
      total += bytes.length;
      if (total > MAX_STATIC_BYTES) {
        throw new RangeError(`${dir} holds more than ${MAX_STATIC_BYTES} bytes`);
      }
      found.set(relative(dir, full).split("\\").join("/"), bytes);
    }
  };
  await walk(dir);
  return found;
}
