/**
 * Static files from a folder, for `env.get_static_file`: the {@linkcode StaticFiles} a sat gets
 * from `--static DIR`.
 *
 * @module
 */

import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type { StaticFiles } from "./host_services.ts";

/** Largest file read: what one host-call reply carries (1 MiB minus 5 bytes). */
export const MAX_STATIC_FILE_BYTES = 1024 * 1024 - 5;

/**
 * Read-only files under one folder. A name is a relative path with `/` between its parts; a
 * name with a `..` part, an absolute one, one with a NUL or a backslash, and one that leads
 * (through a symbolic link) out of the folder are refused with an error; a missing file, or a
 * folder, reads as none.
 *
 * @example
 * ```ts
 * const files = await StaticDir.open("static");
 * using pool = new RunnablePool({ staticFiles: files });
 * await files.read("index.html"); // its bytes, or undefined
 * ```
 */
export class StaticDir implements StaticFiles {
  /** The folder's real path (symbolic links resolved). */
  readonly root: string;

  private constructor(root: string) {
    this.root = root;
  }

  /**
   * Opens a folder of static files.
   *
   * @param dir the folder (relative paths from the working directory)
   * @returns its files
   * @throws {Error} `dir` does not exist or is not a folder (the message names it)
   */
  static async open(dir: string): Promise<StaticDir> {
    const path = resolve(dir);
    let root: string;
    try {
      root = await Deno.realPath(path);
    } catch (error) {
      throw new Error(`static files: cannot open ${path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (!(await Deno.stat(root)).isDirectory) {
      throw new Error(`static files: ${path} is not a folder; give the folder of the files`);
    }
    return new StaticDir(root);
  }

  /**
   * The bytes of file `name`, or undefined when there is none.
   *
   * @param name a relative path such as `"css/site.css"`
   * @returns the file's bytes
   * @throws {TypeError} `name` is empty, absolute, has a `..` part, a NUL or a backslash
   * @throws {Error} it leads out of the folder, or the file is larger than
   *   {@linkcode MAX_STATIC_FILE_BYTES}
   */
  async read(name: string): Promise<Uint8Array | undefined> {
    const problem = nameProblem(name);
    if (problem) throw new TypeError(`static file name ${JSON.stringify(name)} ${problem}`);
    let real: string;
    try {
      real = await Deno.realPath(join(this.root, name));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    // The path with every link resolved must still be inside the folder.
    const inside = relative(this.root, real);
    if (inside === "") return undefined; // the folder itself
    if (inside.startsWith("..") || isAbsolute(inside)) {
      throw new Error(
        `static file ${JSON.stringify(name)} leads out of the static folder (a symbolic link)`,
      );
    }
    const info = await Deno.stat(real);
    if (!info.isFile) return undefined;
    if (info.size > MAX_STATIC_FILE_BYTES) {
      throw new Error(
        `static file ${JSON.stringify(name)} is ${info.size} bytes, more than the ` +
          `${MAX_STATIC_FILE_BYTES} a host call carries`,
      );
    }
    return await Deno.readFile(real);
  }
}

/** What is wrong with a file name, or undefined. */
function nameProblem(name: string): string | undefined {
  if (typeof name !== "string" || name === "") return "is empty";
  if (name.startsWith("/") || isAbsolute(name)) return "must be relative to the static folder";
  if (name.includes("\0") || name.includes("\\")) return "has a NUL or a backslash";
  if (name.split("/").includes("..")) return 'must not have a ".." part';
  if (sep !== "/" && name.includes(sep)) return "has a path separator other than /";
  return undefined;
}
