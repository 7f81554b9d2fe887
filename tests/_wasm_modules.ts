/**
 * The Wasm modules the host's tests load: helloworld-rs (built by runnables/build.sh) and
 * tests/wasm/*.wasm (built from the .wat beside them by tests/wasm/build.sh). Needs
 * --allow-read.
 *
 * @module
 */

import { Runnable, type RunnableOptions } from "../src/wasm/mod.ts";

/** The repository's root. */
export const REPO: URL = new URL("../", import.meta.url);
/** helloworld-rs, as committed. */
export const HELLO_FILE: URL = new URL("runnables/helloworld-rs/helloworld-rs.wasm", REPO);

/** tests/wasm/`name`.wasm. */
export function testModule(name: string): URL {
  return new URL(`tests/wasm/${name}.wasm`, REPO);
}

/** Loads the module in `file` as runnable `name`. */
export function load(file: URL, name: string, options?: RunnableOptions): Promise<Runnable> {
  return Deno.readFile(file).then((bytes) => Runnable.load(name, bytes, options));
}
