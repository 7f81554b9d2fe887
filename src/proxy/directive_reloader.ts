/**
 * Hot reload of Directive.yaml: the proxy watches the file and swaps its routes when a new
 * version validates; a broken version is refused with every problem logged as
 * file:line:column, and the last good routes keep serving. Requests in flight finish on the
 * handler they started with.
 *
 * @module
 */

import { basename, dirname } from "node:path";
import type { Logger } from "../cli/mod.ts";
import { type Directive, loadDirectiveFile } from "../directive/mod.ts";
import type { RouteResolution } from "./proxy_handler.ts";
import { routeResolver } from "./route_resolver.ts";

/** How long the file must stay quiet before it is read again (editors write in bursts). */
const SETTLE_MS = 100;

/** Options of DirectiveReloader.start. */
export interface DirectiveReloaderOptions {
  readonly log: Logger;
  /** Called after each successful reload. */
  readonly onReload?: (directive: Directive) => void;
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
  readonly #watcher: Deno.FsWatcher;
  readonly #watching: Promise<void>;
  #resolve: (method: string, path: string) => RouteResolution;
  #directive: Directive;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #reloading: Promise<void> = Promise.resolve();

  private constructor(path: string, directive: Directive, options: DirectiveReloaderOptions) {
    this.#path = path;
    this.#options = options;
    this.#directive = directive;
    this.#resolve = routeResolver(directive);
    // Watch the folder: editors often replace the file (write + rename) rather than modify it.
    this.#watcher = Deno.watchFs(dirname(path), { recursive: false });
    this.#watching = this.#watch();
  }

  /**
   * Loads the file and starts watching it.
   *
   * @throws DirectiveError when the file is invalid (nothing to fall back on yet)
   */
  static async start(path: string, options: DirectiveReloaderOptions): Promise<DirectiveReloader> {
    return new DirectiveReloader(path, await loadDirectiveFile(path), options);
  }

  /** The Directive in force. */
  get directive(): Directive {
    return this.#directive;
  }

  /** Resolves a request against the Directive in force. */
  resolve(method: string, path: string): RouteResolution {
    return this.#resolve(method, path);
  }

  /** Stops watching. */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#watcher.close();
    await this.#watching;
    await this.#reloading;
  }

  async #watch(): Promise<void> {
    const name = basename(this.#path);
    try {
      for await (const event of this.#watcher) {
        if (!event.paths.some((p) => basename(p) === name)) continue;
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => {
          this.#reloading = this.#reloading.then(() => this.#reload());
        }, SETTLE_MS);
      }
    } catch {
      // The watcher was closed.
    }
  }

  async #reload(): Promise<void> {
    const { log } = this.#options;
    try {
      const directive = await loadDirectiveFile(this.#path);
      this.#resolve = routeResolver(directive);
      this.#directive = directive;
      log.info("reloaded the Directive", {
        file: this.#path,
        handlers: directive.handlers.length,
      });
      this.#options.onReload?.(directive);
    } catch (error) {
      // One log line per problem, each starting file:line:column, as an editor reads them.
      log.error("refused the changed Directive; the last good one keeps serving", {
        file: this.#path,
      });
      for (const line of (error as Error).message.split("\n")) log.error(line);
    }
  }
}
