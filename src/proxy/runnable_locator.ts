/**
 * Where the proxy finds the runnable a Directive's `fn` names. For fn `NAME` (namespace
 * `default`), beside the Directive: `runnables/NAME/NAME.wasm`, `runnables/NAME.wasm`, or
 * Atmo's project layout `NAME/NAME.wasm`; with `--runnables DIR`: `DIR/NAME/NAME.wasm` or
 * `DIR/NAME.wasm`. A namespaced fn `ns::NAME` is looked up the same way inside a folder `ns/`
 * (`runnables/ns/NAME/NAME.wasm`, ...), so two namespaces may hold the same name.
 *
 * @module
 */

import { join } from "node:path";
import type { CallableFn } from "../directive/mod.ts";

/** Atmo's namespace for a fn that names none. */
const DEFAULT_NAMESPACE = "default";
const WASM = ".wasm";

/**
 * The key a runnable is known by between proxy and sat: `NAME` in the default namespace, else
 * `ns::NAME` (identifier and version of a fully qualified name are not part of it).
 */
export function fnKey(fn: Pick<CallableFn, "name" | "namespace">): string {
  return fn.namespace === DEFAULT_NAMESPACE ? fn.name : `${fn.namespace}::${fn.name}`;
}

/** Finds runnable files for one Directive. */
export class RunnableLocator {
  readonly #roots: readonly { dir: string; projectLayout: boolean }[];

  /**
   * @param directiveDir the folder the Directive is in
   * @param runnablesDir `--runnables DIR`, which replaces the places beside the Directive
   */
  constructor(directiveDir: string, runnablesDir?: string) {
    this.#roots = runnablesDir === undefined
      ? [
        { dir: join(directiveDir, "runnables"), projectLayout: false },
        { dir: directiveDir, projectLayout: true },
      ]
      : [{ dir: runnablesDir, projectLayout: false }];
  }

  /** Every file fn `key` may be in, in the order they are tried. */
  candidates(key: string): string[] {
    const [namespace, name] = splitKey(key);
    const prefix = namespace === DEFAULT_NAMESPACE ? [] : [namespace];
    const files: string[] = [];
    for (const root of this.#roots) {
      files.push(join(root.dir, ...prefix, name, name + WASM));
      if (!root.projectLayout) files.push(join(root.dir, ...prefix, name + WASM));
    }
    return files;
  }

  /** The first existing regular file for `key`, or undefined. */
  async find(key: string): Promise<string | undefined> {
    for (const file of this.candidates(key)) {
      try {
        if ((await Deno.stat(file)).isFile) return file;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    return undefined;
  }

  /**
   * Keys of every runnable found in the usual places (default namespace, and one level of
   * namespace folders), for did-you-mean suggestions and headless mode.
   */
  async list(): Promise<string[]> {
    const keys = new Set<string>();
    for (const root of this.#roots) {
      for (const entry of await entries(root.dir)) {
        if (entry.isFile && entry.name.endsWith(WASM) && !root.projectLayout) {
          keys.add(entry.name.slice(0, -WASM.length));
        } else if (entry.isDirectory) {
          if (await this.find(entry.name) !== undefined) keys.add(entry.name);
          else if (!root.projectLayout) {
            for (const inner of await entries(join(root.dir, entry.name))) {
              const key = `${entry.name}::${inner.name.replace(/\.wasm$/, "")}`;
              if (/^[A-Za-z0-9_.-]+$/.test(entry.name) && await this.find(key) !== undefined) {
                keys.add(key);
              }
            }
          }
        }
      }
    }
    return [...keys].sort();
  }
}

function splitKey(key: string): [string, string] {
  const at = key.indexOf("::");
  return at < 0 ? [DEFAULT_NAMESPACE, key] : [key.slice(0, at), key.slice(at + 2)];
}

async function entries(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return [];
    }
    throw error;
  }
}
