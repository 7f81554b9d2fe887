/**
 * Where a {@linkcode RunnablePool}'s Web Workers load their code from.
 *
 * From source it is `_worker.ts` beside this file. `deno bundle` does not follow
 * `new Worker(new URL(...))`, so `deno task bundle` (scripts/bundle.ts) bundles `_worker.ts` on
 * its own and, through an import map, replaces this module in dist/*.js by one whose
 * {@linkcode workerUrl} returns that code as a `data:` URL: the bundle then needs no file beside
 * it. Keep the export's name and type: the generated module has the same.
 *
 * @module
 */

/**
 * The URL to start a pool worker from.
 *
 * @returns `_worker.ts` beside this module (a `data:` URL in a bundle).
 * @example
 * ```ts
 * const worker = new Worker(workerUrl(), { type: "module" });
 * ```
 */
export function workerUrl(): URL | string {
  return new URL("./_worker.ts", import.meta.url);
}
