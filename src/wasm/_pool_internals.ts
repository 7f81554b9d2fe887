/**
 * The parts of {@linkcode RunnablePool} that only `Runnable` uses: keyed by symbols that
 * mod.ts does not export, so they stay out of the public surface.
 *
 * @module
 */

import type { FetchPolicy } from "./_fetch_call.ts";
import type { RunnableSpec } from "./_protocol.ts";
import type { RunnableLog } from "./runnable.ts";
import type { ByteAllocator } from "../wire/mod.ts";

/**
 * `pool[SUBMIT](runnable, input, request, options)`: queues one job; `input` a Uint8Array or a
 * checked `StreamedInput` (_input_call.ts).
 */
export const SUBMIT: unique symbol = Symbol("RunnablePool.submit");
/** `pool[RETAIN]()`: a runnable starts using the pool. */
export const RETAIN: unique symbol = Symbol("RunnablePool.retain");
/** `pool[RELEASE](key)`: a runnable is closed; workers drop its module. */
export const RELEASE: unique symbol = Symbol("RunnablePool.release");
/** `pool[ADOPT]()`: the pool was made for its runnables and closes when the last one does. */
export const ADOPT: unique symbol = Symbol("RunnablePool.adopt");

/** A loaded runnable as the pool sees it. */
export interface PoolRunnable extends RunnableSpec {
  module: WebAssembly.Module;
  log: RunnableLog | undefined;
  /**
   * The module imports `env.request_get_field` or `env.request_set_field`: only then does a
   * job's request go along.
   */
  readsRequest: boolean;
  /** Whom `env.fetch_url` may reach; the pool's own policy if undefined. */
  fetch: FetchPolicy | undefined;
  /**
   * Every import of the module stays inside its instance (_inline_lane.ts `isInlineable`): its
   * short jobs may run on the pool's own thread.
   */
  inlineable: boolean;
  /** Makes the array an output is copied into; a new Uint8Array if undefined. */
  allocOutput: ByteAllocator | undefined;
}

/**
 * A frozen copy of a secrets option.
 *
 * @throws {TypeError} it is not a record of strings
 */
export function checkSecrets(
  secrets: Record<string, string>,
  label: string,
): Readonly<Record<string, string>> {
  if (typeof secrets !== "object" || secrets === null || Array.isArray(secrets)) {
    throw new TypeError(`${label} must be an object of strings by name`);
  }
  const copy: Record<string, string> = {};
  for (const [name, value] of Object.entries(secrets)) {
    if (typeof value !== "string") {
      throw new TypeError(`${label}: the secret ${JSON.stringify(name)} must be a string`);
    }
    copy[name] = value;
  }
  return Object.freeze(copy);
}
