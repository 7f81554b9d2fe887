/** Options of {@linkcode RunnableError}. */
export interface RunnableErrorOptions extends ErrorOptions {
  /** The runnable's name. */
  runnable: string;
  /** The file it was loaded from, if any. */
  file?: string;
}

/**
 * A runnable could not be loaded: its bytes are not valid WebAssembly, it lacks an export of
 * Suborbital's ABI, it imports something the host cannot provide, or its memory is too large.
 * Errors while a job runs are not thrown: they are a {@linkcode RunResult} with `ok: false`.
 *
 * @example
 * ```ts
 * try {
 *   await Runnable.load("hello", bytes);
 * } catch (error) {
 *   if (error instanceof RunnableError) log(`cannot load ${error.runnable}: ${error.message}`);
 * }
 * ```
 */
export class RunnableError extends Error {
  /** Always `"RunnableError"`. */
  override name = "RunnableError";
  /** The runnable's name. */
  readonly runnable: string;
  /** The file it was loaded from, if any. */
  readonly file: string | undefined;

  /**
   * Makes the error.
   *
   * @param message what failed and how to fix it
   * @param options the runnable, its file and the underlying error
   */
  constructor(message: string, options: RunnableErrorOptions) {
    super(message, { cause: options.cause });
    this.runnable = options.runnable;
    this.file = options.file;
  }
}
