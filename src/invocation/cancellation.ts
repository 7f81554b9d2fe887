/**
 * A one-shot cancellation for invocations: what an AbortSignal does for them, without an
 * EventTarget. The proxy makes one per request and cancels it from its deadline timer or when
 * the client goes away; the sat makes one per invocation and cancels it when the proxy does or
 * the channel ends. An AbortController would add its signal and an event listener added and
 * removed per invocation, on every request, on a path that rarely cancels: in the sat, they
 * cost 3 µs of CPU per request (28 against 25, `deno task bench:compare`). Code that needs a
 * real AbortSignal (fetch, an event listener) asks for {@linkcode Cancellation.signal}.
 *
 * @module
 */

/**
 * Cancels the invocations given it: the one waiting now, and any started after `cancel`.
 *
 * @example
 * ```ts
 * const cancellation = new Cancellation();
 * const timer = setTimeout(() => cancellation.cancel(new Error("too slow")), 30_000);
 * try {
 *   await sat.invoke(header, body, { cancellation });
 * } finally {
 *   clearTimeout(timer);
 * }
 * ```
 */
export class Cancellation {
  #reason: Error | undefined;
  #onCancel: ((reason: Error) => void) | undefined;
  #controller: AbortController | undefined;

  /** Why it was cancelled; undefined until then. */
  get reason(): Error | undefined {
    return this.#reason;
  }

  /** Cancels: the invocation waiting on it fails with `reason`; a second call does nothing. */
  cancel(reason: Error): void {
    if (this.#reason) return;
    this.#reason = reason;
    const onCancel = this.#onCancel;
    this.#onCancel = undefined;
    onCancel?.(reason);
    this.#controller?.abort(reason);
  }

  /**
   * An AbortSignal that aborts with the same reason, made on first use (already aborted if
   * this is cancelled): for code that takes a signal. It costs what an AbortController costs,
   * which the rest of this class avoids.
   */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /**
   * Sets what `cancel` does now (undefined: nothing); called by the invocation that waits.
   * An invocation checks {@linkcode reason} before it starts, so it never waits on one that
   * is already cancelled. One action at a time: a second call replaces the first (two
   * waiters at once use {@linkcode signal}).
   */
  onCancel(action: ((reason: Error) => void) | undefined): void {
    this.#onCancel = action;
  }
}
