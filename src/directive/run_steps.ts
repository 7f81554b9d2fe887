/**
 * Atmo's step execution semantics (v0.4), independent of where functions run.
 *
 * - Every function's input is the original request body; results travel only through the
 *   request state, a map from key to bytes. After a step, each function's output is stored
 *   under its `as` key (which defaults to its name as written).
 * - `with: {alias: key}` gives that function a view in which each alias holds the value of
 *   `key`, the source keys are hidden and every other key is visible; the real state is
 *   unchanged afterwards.
 * - A `group` runs its functions concurrently on the state from before the step, and merges
 *   all their outputs after it, in the order written.
 * - A function error returns by default: the handler ends with that error. `onErr` may say
 *   `continue` (for any code, or per code with `other` for the rest); then
 *   `{"code":c,"message":"m"}` is stored under the function's key and the handler goes on.
 * - The response body is the state value under the handler's `response` key.
 *
 * @module
 */

import type { CallableFn, HandlerBase } from "./directive.ts";

/** What one function call gave. */
export type FnOutcome =
  | {
    readonly ok: true;
    readonly output: Uint8Array;
    readonly headers?: Readonly<Record<string, string>>;
  }
  | { readonly ok: false; readonly code: number; readonly message: string };

/** Runs one function with a view of the state. */
export type CallFn = (fn: CallableFn, state: ReadonlyMap<string, Uint8Array>) => Promise<FnOutcome>;

/** How a handler's steps ended. */
export type StepsOutcome =
  | {
    readonly ok: true;
    readonly body: Uint8Array;
    readonly headers: Readonly<Record<string, string>>;
    readonly state: ReadonlyMap<string, Uint8Array>;
  }
  | { readonly ok: false; readonly code: number; readonly message: string };

const encoder = new TextEncoder();

/** The state a function sees under its `with` aliases. */
export function stateView(
  state: ReadonlyMap<string, Uint8Array>,
  aliases: Readonly<Record<string, string>>,
): ReadonlyMap<string, Uint8Array> {
  const entries = Object.entries(aliases);
  if (entries.length === 0) return state;
  const view = new Map(state);
  for (const [, key] of entries) view.delete(key);
  for (const [alias, key] of entries) {
    const value = state.get(key);
    if (value !== undefined) view.set(alias, value);
  }
  return view;
}

/**
 * Runs `handler`'s steps through `call`.
 *
 * @param initial state to start from (a schedule's `state`, or a headless request's)
 * @example
 * ```ts
 * const outcome = await runSteps(handler, (fn, state) => invokeOnASat(fn.name, body, state));
 * ```
 */
export async function runSteps(
  handler: Pick<HandlerBase, "steps" | "response">,
  call: CallFn,
  initial: ReadonlyMap<string, Uint8Array> = new Map(),
): Promise<StepsOutcome> {
  const state = new Map(initial);
  const headers: Record<string, string> = {};
  for (const step of handler.steps) {
    const fns = step.kind === "fn" ? [step] : step.group;
    // A group's functions all see the state from before the step: outputs land after it.
    const outcomes = await Promise.all(fns.map((fn) => call(fn, stateView(state, fn.with))));
    for (const [i, outcome] of outcomes.entries()) {
      const fn = fns[i]!;
      if (outcome.ok) {
        state.set(fn.as, outcome.output);
        Object.assign(headers, outcome.headers);
        continue;
      }
      const action = fn.onErr.codes[outcome.code] ?? fn.onErr.other;
      if (action === "return") return { ok: false, code: outcome.code, message: outcome.message };
      state.set(
        fn.as,
        encoder.encode(JSON.stringify({ code: outcome.code, message: outcome.message })),
      );
    }
  }
  return { ok: true, body: state.get(handler.response) ?? new Uint8Array(0), headers, state };
}
