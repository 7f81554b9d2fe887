/**
 * A one-shot cancellation for invocations: what an AbortSignal does for them, without an
 * EventTarget. The proxy makes one per request and cancels it from its deadline timer or when
 * the client goes away; an AbortController would add its signal and an event listener added
 * and removed per invocation, on every request, on a path that rarely cancels.
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
  }

  /**
   * Sets what `cancel` does now (undefined: nothing); called by the invocation that waits.
   * An invocation checks {@linkcode reason} before it starts, so it never waits on one that
   * is already cancelled.
   */
  onCancel(action: ((reason: Error) => void) | undefined): void {
    this.#onCancel = action;
  }
}
