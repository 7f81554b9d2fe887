/**
 * The SHA-256 of each runnable a sat runs from its own `--runnables DIR`, which it announces
 * so that the proxy routes an fn to it only when its copy is the proxy's own.
 *
 * @module
 */

import { join } from "node:path";
import { sha256Hex } from "../invocation/mod.ts";

/**
 * Digests of runnables `names` of `dir`, each read from `dir/NAME/NAME.wasm` or, failing
 * that, `dir/NAME.wasm` (the layouts `loadRunnables` reads).
 *
 * @throws Error when a runnable's file cannot be read
 */
export async function runnableDigests(
  dir: string,
  names: readonly string[],
): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const name of names) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(join(dir, name, `${name}.wasm`));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      bytes = await Deno.readFile(join(dir, `${name}.wasm`));
    }
    digests[name] = await sha256Hex(bytes);
  }
  return digests;
}
