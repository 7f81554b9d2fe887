/**
 * The runnables a proxy delivered to this sat: files kept in a content-addressed cache in the
 * sat's state folder (each checked against its SHA-256 on arrival and again when loaded), and
 * the deployment in force. A new deployment loads into a fresh pool of workers with the host
 * configuration it carries, then takes over at once; invocations already running finish on the
 * old one, which is closed when its last invocation ends.
 *
 * @module
 */

import { join } from "node:path";
import {
  type Delivery,
  type DeployedFunctions,
  type DeployManifest,
  type InvocationRunner,
  type SatConfig,
  sha256Hex,
} from "../invocation/mod.ts";
import { Runnable, RunnableCache, type RunnableOptions, RunnablePool } from "../wasm/mod.ts";
import type { CacheBackend, DatabaseBackend, StaticFiles } from "../wasm/host_services.ts";
import { requestlessFunctions, wasmRunner } from "./wasm_runner.ts";

const DIGEST = /^[0-9a-f]{64}$/;

/** The services a deployment's configuration asks for, made by the sat. */
export interface HostServices {
  readonly cache?: CacheBackend;
  readonly database?: DatabaseBackend;
  /** Releases connections; called when the deployment is retired. */
  close?(): void | Promise<void>;
}

/** Options of {@linkcode DeployedRunnables.open}. */
export interface DeployedRunnablesOptions {
  /** The cache folder (created 0700 if missing). */
  readonly cacheDir: string;
  /** Sandbox settings every runnable is loaded with (limits, workers, log, secrets). */
  readonly runnable: RunnableOptions;
  /** Makes the cache and database of a deployment's configuration (default: none). */
  readonly services?: (config: SatConfig) => HostServices | Promise<HostServices>;
}

interface Generation {
  readonly manifest: DeployManifest;
  readonly pool: RunnablePool;
  readonly runnables: Map<string, Runnable>;
  readonly run: InvocationRunner;
  readonly services: HostServices;
  inFlight: number;
  retired: boolean;
}

/**
 * Delivered runnables and the deployment in force.
 *
 * @example
 * ```ts
 * const deployed = await DeployedRunnables.open({ cacheDir, runnable: { timeoutMs: 5000 } });
 * serveInvocations(channel, [], deployed.runner, { delivery: deployed, hello: await deployed.hello() });
 * ```
 */
export class DeployedRunnables implements Delivery {
  readonly #options: DeployedRunnablesOptions;
  readonly #memoryCache = new RunnableCache();
  #current: Generation | undefined;
  #previousManifest: DeployManifest | undefined;

  private constructor(options: DeployedRunnablesOptions) {
    this.#options = options;
  }

  /** Opens (creating if needed) the cache folder. */
  static async open(options: DeployedRunnablesOptions): Promise<DeployedRunnables> {
    await Deno.mkdir(options.cacheDir, { recursive: true, mode: 0o700 });
    return new DeployedRunnables(options);
  }

  /** What HELLO says: the functions in force, their digests, the cached files. */
  async hello(): Promise<{
    functions: string[];
    digests: Record<string, string>;
    cached: string[];
    delivery: true;
    requestless: string[];
  }> {
    const digests = { ...this.#current?.manifest.runnables };
    const cached: string[] = [];
    for await (const entry of Deno.readDir(this.#options.cacheDir)) {
      if (entry.isFile && DIGEST.test(entry.name)) cached.push(entry.name);
    }
    return {
      functions: Object.keys(digests),
      digests,
      cached: cached.sort(),
      delivery: true,
      requestless: this.#current ? requestlessFunctions(this.#current.runnables) : [],
    };
  }

  /** Runs an invocation on the deployment in force. */
  readonly runner: InvocationRunner = async (header, body, cancellation) => {
    const generation = this.#current;
    if (!generation) {
      return { ok: false, code: 503, message: "this sat has no deployment from the proxy yet" };
    }
    generation.inFlight++;
    try {
      return await generation.run(header, body, cancellation);
    } finally {
      generation.inFlight--;
      if (generation.retired && generation.inFlight === 0) this.#close(generation);
    }
  };

  /** @inheritdoc */
  async store(sha256: string, bytes: Uint8Array): Promise<void> {
    const actual = await sha256Hex(bytes);
    if (actual !== sha256) {
      throw new Error(`a delivered file has digest ${actual}, not the announced ${sha256}`);
    }
    // Write then rename: a crash never leaves a half-written file under a digest's name.
    const file = join(this.#options.cacheDir, sha256);
    const temporary = `${file}.${crypto.randomUUID()}.part`;
    await Deno.writeFile(temporary, bytes, { mode: 0o600 });
    await Deno.rename(temporary, file);
  }

  /** @inheritdoc */
  async deploy(manifest: DeployManifest): Promise<DeployedFunctions> {
    const services = await this.#options.services?.(manifest.config) ?? {};
    // The Directive's hosts, and any this sat's operator allowed too (--allow-hosts).
    const allowedHosts = [
      ...new Set([...manifest.config.allowedHosts, ...this.#options.runnable.allowedHosts ?? []]),
    ];
    const pool = new RunnablePool({
      ...this.#options.runnable,
      allowedHosts,
      authHeaders: manifest.config.authHeaders,
      // The in-memory cache outlives deployments, as a Redis one does.
      cache: services.cache ?? this.#memoryCache,
      ...(services.database ? { database: services.database } : {}),
      staticFiles: this.#staticFiles(manifest),
    });
    const runnables = new Map<string, Runnable>();
    try {
      for (const [key, sha256] of Object.entries(manifest.runnables)) {
        const bytes = await this.#read(sha256);
        try {
          // Fetch rules and files are the pool's: none per runnable may override them.
          const { allowedHosts: _, authHeaders: __, staticFiles: ___, ...limits } =
            this.#options.runnable;
          runnables.set(key, await Runnable.load(key, bytes, { ...limits, pool }));
        } catch (error) {
          throw new Error(`runnable "${key}" does not load: ${(error as Error).message}`, {
            cause: error,
          });
        }
      }
    } catch (error) {
      for (const runnable of runnables.values()) runnable.close();
      pool.close();
      await services.close?.();
      throw error;
    }
    const old = this.#current;
    this.#current = {
      manifest,
      pool,
      runnables,
      run: wasmRunner(runnables),
      services,
      inFlight: 0,
      retired: false,
    };
    if (old) {
      old.retired = true;
      if (old.inFlight === 0) this.#close(old);
    }
    await this.#prune(manifest, this.#previousManifest);
    this.#previousManifest = manifest;
    return {
      functions: { ...manifest.runnables },
      requestless: requestlessFunctions(runnables),
    };
  }

  /** Stops every runnable. */
  async close(): Promise<void> {
    if (this.#current) await this.#close(this.#current);
    this.#current = undefined;
  }

  async #close(generation: Generation): Promise<void> {
    for (const runnable of generation.runnables.values()) runnable.close();
    generation.pool.close();
    await generation.services.close?.();
  }

  /** A cached file, checked against its digest (the disk is not trusted more than the wire). */
  async #read(sha256: string): Promise<Uint8Array> {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(join(this.#options.cacheDir, sha256));
    } catch (error) {
      throw new Error(`the file with digest ${sha256} was not delivered`, { cause: error });
    }
    if (await sha256Hex(bytes) !== sha256) {
      await Deno.remove(join(this.#options.cacheDir, sha256)).catch(() => {});
      throw new Error(`the cached file ${sha256} is corrupt; it was removed`);
    }
    return bytes;
  }

  #staticFiles(manifest: DeployManifest): StaticFiles {
    return {
      read: async (name) => {
        const sha256 = Object.hasOwn(manifest.static, name) ? manifest.static[name] : undefined;
        return sha256 === undefined ? undefined : await this.#read(sha256);
      },
    };
  }

  /** Removes cached files that neither this nor the previous deployment names. */
  async #prune(current: DeployManifest, previous: DeployManifest | undefined): Promise<void> {
    const keep = new Set<string>();
    for (const manifest of [current, previous]) {
      if (!manifest) continue;
      for (const sha of [...Object.values(manifest.runnables), ...Object.values(manifest.static)]) {
        keep.add(sha);
      }
    }
    for await (const entry of Deno.readDir(this.#options.cacheDir)) {
      if (!entry.isFile || keep.has(entry.name)) continue;
      if (DIGEST.test(entry.name) || entry.name.endsWith(".part")) {
        await Deno.remove(join(this.#options.cacheDir, entry.name)).catch(() => {});
      }
    }
  }
}
