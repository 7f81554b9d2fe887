/**
 * The SHA-256 of each runnable a sat runs from its own `--runnables DIR`, which it announces
 * so that the proxy routes an fn to it only when its copy is the proxy's own.
 *
 * @module
 */

import { sha256Hex } from "../invocation/mod.ts";
import { runnableFiles } from "../wasm/mod.ts";

/**
 * Digests of the runnables of `dir`, found as `loadRunnables` finds them.
 *
 * @throws Error when a runnable's file cannot be read
 */
export async function runnableDigests(dir: string): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const [name, file] of await runnableFiles(dir)) {
    digests[name] = await sha256Hex(await Deno.readFile(file));
  }
  return digests;
}
