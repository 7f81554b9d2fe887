import { ADOPT } from "./_pool_internals.ts";
import { Runnable, type RunnableOptions } from "./runnable.ts";
import { RunnableError } from "./runnable_error.ts";
import { RunnablePool } from "./runnable_pool.ts";

const WASM_SUFFIX = ".wasm";

/**
 * Loads every runnable of a folder: `dir/<name>/<name>.wasm` (the layout of `runnables/`, as
 * Subo builds it) and `dir/<name>.wasm` both become runnable `<name>`. Other files and folders
 * without such a file are skipped.
 *
 * Without `options.pool`, all the runnables share one new pool (made with `concurrency` and
 * `workerPermissions`) that closes when the last of them is closed.
 *
 * @param dir the folder
 * @param options as for {@linkcode Runnable.load}, applied to each
 * @returns the runnables by name, in name order
 * @throws {RunnableError} a file is not a valid runnable (the message and `file` name it; the
 *   runnables already loaded are closed), or two files give the same name
 * @throws {Deno.errors.NotFound} `dir` does not exist
 *
 * @example
 * ```ts
 * const runnables = await loadRunnables("runnables", { timeoutMs: 5000 });
 * const hello = runnables.get("helloworld-rs");
 * // ...
 * for (const runnable of runnables.values()) runnable.close();
 * ```
 */
export async function loadRunnables(
  dir: string,
  options: RunnableOptions = {},
): Promise<Map<string, Runnable>> {
  const files = await runnableFiles(dir);
  const names = [...files.keys()].sort();

  let pool = options.pool;
  if (!pool) {
    pool = new RunnablePool(options);
    pool[ADOPT]();
  }
  const loaded = await Promise.allSettled(
    names.map(async (name) => {
      const file = files.get(name)!;
      try {
        return await Runnable.load(name, await Deno.readFile(file), { ...options, pool });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new RunnableError(`${file}: ${message}`, { runnable: name, file, cause: error });
      }
    }),
  );
  const failure = loaded.find((result) => result.status === "rejected");
  if (failure || names.length === 0) {
    for (const result of loaded) if (result.status === "fulfilled") result.value.close();
    if (!options.pool) pool.close();
    if (failure) throw failure.reason;
  }
  const runnables = new Map<string, Runnable>();
  loaded.forEach((result, i) => {
    if (result.status === "fulfilled") runnables.set(names[i]!, result.value);
  });
  return runnables;
}

/**
 * The runnables of a folder by name, as {@linkcode loadRunnables} finds them:
 * `dir/<name>/<name>.wasm` and `dir/<name>.wasm`.
 *
 * @throws {RunnableError} two files give the same name
 * @throws {Deno.errors.NotFound} `dir` does not exist
 */
export async function runnableFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const add = (name: string, file: string) => {
    const other = files.get(name);
    if (other !== undefined) {
      throw new RunnableError(`${file}: runnable "${name}" is also defined by ${other}; keep one`, {
        runnable: name,
        file,
      });
    }
    files.set(name, file);
  };
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(WASM_SUFFIX)) {
      add(entry.name.slice(0, -WASM_SUFFIX.length), `${dir}/${entry.name}`);
    } else if (entry.isDirectory) {
      const file = `${dir}/${entry.name}/${entry.name}${WASM_SUFFIX}`;
      if (await isFile(file)) add(entry.name, file);
    }
  }
  return files;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
