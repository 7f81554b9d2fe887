/**
 * loadDirectiveFile: reads and parses a Directive.yaml from disk. The one place in this layer
 * that touches the file system.
 *
 * @module
 */

import type { Directive } from "./directive.ts";
import { DirectiveError } from "./directive_error.ts";
import {
  MAX_DIRECTIVE_LEN,
  parseDirective,
  type ParseDirectiveOptions,
} from "./parse_directive.ts";

/** Options of {@link loadDirectiveFile}: those of `parseDirective` but the file name. */
export type LoadDirectiveFileOptions = Omit<ParseDirectiveOptions, "file">;

/**
 * Reads, parses and validates a Directive file. Problems name the file by `path` as given.
 *
 * Needs `--allow-read` for the file and `--allow-env=LOG_TOKENS,LOG_STREAM` (read by the
 * `yaml` package).
 *
 * @param path the file, e.g. `Directive.yaml`
 * @param options `runnables`: the runnable names available (see `parseDirective`)
 * @returns the resolved Directive
 * @throws DirectiveError for an invalid Directive (every problem, as `path:line:column: ...`)
 *   or a file that is not UTF-8 text
 * @throws RangeError when the file is larger than `MAX_DIRECTIVE_LEN` bytes
 * @throws Error `cannot read Directive file "<path>": ...` when the file cannot be read, with
 *   the `Deno.errors` error (NotFound, PermissionDenied, ...) as `cause`
 *
 * @example
 * ```ts
 * const directive = await loadDirectiveFile("Directive.yaml", { runnables: ["helloworld-rs"] });
 * ```
 */
export async function loadDirectiveFile(
  path: string,
  options: LoadDirectiveFileOptions = {},
): Promise<Directive> {
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (!info.isFile) throw new Deno.errors.IsADirectory(`not a regular file`);
    if (info.size > MAX_DIRECTIVE_LEN) throw sizeError(path, info.size);
    bytes = new Uint8Array(await new Response(file.readable).arrayBuffer());
  } catch (err) {
    if (err instanceof RangeError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot read Directive file ${JSON.stringify(path)}: ${reason}`, {
      cause: err,
    });
  }
  if (bytes.length > MAX_DIRECTIVE_LEN) throw sizeError(path, bytes.length);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (err) {
    throw new DirectiveError(path, [
      { file: path, line: 1, column: 1, path: "", message: "is not UTF-8 text" },
    ], { cause: err });
  }
  return parseDirective(text, { ...options, file: path });
}

function sizeError(path: string, size: number): RangeError {
  return new RangeError(
    `Directive file ${JSON.stringify(path)} is ${size} bytes; at most ${MAX_DIRECTIVE_LEN} allowed`,
  );
}
