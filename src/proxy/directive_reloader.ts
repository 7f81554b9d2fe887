/**
 * Hot reload of Directive.yaml: the proxy watches the file, the runnables it names and
 * `static/`, and when a new version validates it first rolls the new deployment out to the
 * sats, then swaps its routes; a broken version is refused with every problem logged as
 * file:line:column, and the last good routes keep serving. Requests in flight finish on the
 * handler they started with.
 *
 * @module
 */

import { dirname, join, resolve } from "node:path";
import type { Logger } from "../cli/mod.ts";
import type { Directive } from "../directive/mod.ts";
import { type Deployment, loadDeployment } from "./deployment.ts";
import type { RouteResolution } from "./proxy_handler.ts";
import { routeResolver } from "./route_resolver.ts";

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** How long the file must stay quiet before it is read again (editors write in bursts). */
const SETTLE_MS = 100;

/** Options of DirectiveReloader.start. */
export interface DirectiveReloaderOptions {
  readonly log: Logger;
  /** `--runnables DIR`: where runnables are, instead of beside the Directive. */
  readonly runnablesDir?: string;
  /** Rolls a new deployment out to the sats; the routes swap once it resolves. */
  readonly apply?: (deployment: Deployment) => Promise<void>;
  /** Called after each successful reload. */
  readonly onReload?: (directive: Directive) => void;
  /** Called when a changed Directive is refused (the old one stays). */
  readonly onRefused?: (error: Error) => void;
}

/**
 * The current Directive of a file, kept up to date.
 *
 * @example
 * ```ts
 * const directive = await DirectiveReloader.start("Directive.yaml", { log });
 * Deno.serve(createProxyHandler({ resolve: (m, p) => directive.resolve(m, p), ... }));
 * ```
 */
export class DirectiveReloader {
  readonly #path: string;
  readonly #options: DirectiveReloaderOptions;
  #watchers: Deno.FsWatcher[] = [];
  #watched = "";
  #resolve: (method: string, path: string) => RouteResolution;
  #deployment: Deployment;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #reloading: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(path: string, deployment: Deployment, options: DirectiveReloaderOptions) {
    this.#path = path;
    this.#options = options;
    this.#deployment = deployment;
    this.#resolve = routeResolver(deployment.directive);
    this.#watch();
  }

  /**
   * Loads the Directive and what it names, and starts watching them.
   *
   * @throws DirectiveError when the Directive is invalid or names an fn no file provides
   *   (nothing to fall back on yet)
   */
  static async start(path: string, options: DirectiveReloaderOptions): Promise<DirectiveReloader> {
    const deployment = await loadDeployment(path, { runnablesDir: options.runnablesDir });
    return new DirectiveReloader(path, deployment, options);
  }

  /** The Directive in force. */
  get directive(): Directive {
    return this.#deployment.directive;
  }

  /** The deployment in force. */
  get deployment(): Deployment {
    return this.#deployment;
  }

  /** Resolves a request against the Directive in force. */
  resolve(method: string, path: string): RouteResolution {
    return this.#resolve(method, path);
  }

  /** Stops watching. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const watcher of this.#watchers) watcher.close();
    await this.#reloading;
  }

  /**
   * (Re)starts watching the folders of the Directive, of each runnable file and `static/`:
   * folders, not files, because editors and build tools often replace a file (write + rename).
   */
  #watch(): void {
    const staticDir = join(dirname(this.#path), "static");
    const dirs = new Set([dirname(this.#path)]);
    for (const file of this.#deployment.sources.values()) dirs.add(dirname(file));
    const existing = [...dirs].filter(isDirectory).sort();
    // static/ is watched with its subfolders; the others alone (a Directive's folder may hold
    // much more, e.g. the whole repository).
    const watchStatic = isDirectory(staticDir);
    const key = existing.join("\n") + (watchStatic ? "\n+static" : "");
    if (key === this.#watched && this.#watchers.length > 0) return;
    for (const watcher of this.#watchers) watcher.close();
    this.#watched = key;
    this.#watchers = [Deno.watchFs(existing, { recursive: false })];
    if (watchStatic) this.#watchers.push(Deno.watchFs(staticDir, { recursive: true }));
    const inStatic = (path: string) => {
      const full = resolve(path);
      return full === resolve(staticDir) || full.startsWith(resolve(staticDir) + "/");
    };
    const relevant = (path: string) =>
      resolve(path) === resolve(this.#path) || path.endsWith(".wasm") || inStatic(path);
    for (const watcher of this.#watchers) {
      (async () => {
        try {
          for await (const event of watcher) {
            if (!event.paths.some(relevant)) continue;
            clearTimeout(this.#timer);
            this.#timer = setTimeout(() => {
              this.#reloading = this.#reloading.then(() => this.#reload());
            }, SETTLE_MS);
          }
        } catch {
          // The watcher was closed.
        }
      })();
    }
  }

  async #reload(): Promise<void> {
    const { log } = this.#options;
    if (this.#closed) return;
    try {
      const deployment = await loadDeployment(this.#path, {
        runnablesDir: this.#options.runnablesDir,
      });
      const same = JSON.stringify(deployment.manifest) ===
          JSON.stringify(this.#deployment.manifest) &&
        JSON.stringify(deployment.directive) === JSON.stringify(this.#deployment.directive);
      if (same) return;
      await this.#options.apply?.(deployment);
      const directive = deployment.directive;
      this.#resolve = routeResolver(directive);
      this.#deployment = deployment;
      this.#watch();
      log.info("reloaded the Directive", {
        file: this.#path,
        handlers: directive.handlers.length,
        runnables: Object.keys(deployment.manifest.runnables).length,
      });
      this.#options.onReload?.(directive);
    } catch (error) {
      // One log line per problem, each starting file:line:column, as an editor reads them.
      log.error("refused the changed Directive; the last good one keeps serving", {
        file: this.#path,
      });
      for (const line of (error as Error).message.split("\n")) log.error(line);
      this.#options.onRefused?.(error as Error);
    }
  }
}
