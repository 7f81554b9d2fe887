/**
 * The proxy's side of the invocation protocol: one connected, trusted sat, reached through a
 * secure channel, running many invocations at once.
 *
 * @module
 */

import type { SecureChannel } from "../channel/mod.ts";
import { concatBytes } from "../wire/mod.ts";
import {
  BODY,
  decodeInvocationMessage,
  encodeCancel,
  encodeWithBody,
  HELLO,
  InvocationProtocolError,
  INVOKE,
  type InvokeHeader,
  RESULT,
  type ResultHeader,
} from "./invocation_codec.ts";

/** The sat went away (channel closed or broke) before the invocation finished. */
export class SatGoneError extends Error {
  override readonly name = "SatGoneError";
}

/** The result of an invocation's output exceeded the allowed size. */
export class OutputTooLargeError extends RangeError {
  override readonly name = "OutputTooLargeError";
}

/** How an invocation ended on the sat. */
export type InvokeOutcome =
  | {
    readonly ok: true;
    readonly output: Uint8Array;
    /** Response headers the function set. */
    readonly headers?: Readonly<Record<string, string>>;
  }
  | { readonly ok: false; readonly code: number; readonly message: string };

/** Options of one invocation. */
export interface InvokeOptions {
  /** Aborting sends CANCEL to the sat and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Largest output accepted; default 64 MiB. */
  readonly maxOutputBytes?: number;
}

/** Options of SatConnection.accept. */
export interface SatConnectionOptions {
  /** How long to wait for the sat's HELLO; default 10 s. */
  readonly helloTimeoutMs?: number;
}

const DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;

interface Pending {
  readonly resolve: (outcome: InvokeOutcome) => void;
  readonly reject: (error: Error) => void;
  readonly maxOutput: number;
  header?: ResultHeader;
  chunks: Uint8Array[];
  size: number;
}

/**
 * A sat as the proxy sees it.
 *
 * @example
 * ```ts
 * const sat = await SatConnection.accept(channel);
 * const outcome = await sat.invoke(header, body);
 * ```
 */
export class SatConnection {
  readonly #channel: SecureChannel;
  readonly #functions: ReadonlySet<string>;
  readonly #pending = new Map<number, Pending>();
  readonly #closed: Promise<Error | undefined>;
  #nextId = 1;
  #error: Error | undefined;
  #ended = false;

  private constructor(channel: SecureChannel, functions: readonly string[]) {
    this.#channel = channel;
    this.#functions = new Set(functions);
    this.#closed = this.#readLoop();
  }

  /**
   * Waits for the sat's HELLO on a fresh channel.
   *
   * @throws InvocationProtocolError when the first message is not a HELLO, or it times out
   */
  static async accept(
    channel: SecureChannel,
    options: SatConnectionOptions = {},
  ): Promise<SatConnection> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new InvocationProtocolError("the sat sent no HELLO in time"));
        channel.close();
      }, options.helloTimeoutMs ?? 10_000);
    });
    try {
      const first = await Promise.race([channel.receive(), timeout]);
      if (!first) throw new InvocationProtocolError("the sat closed before its HELLO");
      const message = decodeInvocationMessage(first);
      if (message.type !== HELLO) throw new InvocationProtocolError("expected HELLO first");
      return new SatConnection(channel, message.functions);
    } catch (error) {
      await channel.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The sat's identifier. */
  get peer(): string {
    return this.#channel.peer;
  }

  /** The functions the sat announced. */
  get functions(): ReadonlySet<string> {
    return this.#functions;
  }

  /** Invocations sent and not yet finished. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** True once the channel has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Resolves when the channel ends, with the error that ended it, if any. */
  get closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  /**
   * Runs `header.fn` on the sat with `body` as input.
   *
   * @throws SatGoneError when the sat goes away first; the signal's reason when aborted;
   *   OutputTooLargeError when the output exceeds maxOutputBytes
   */
  async invoke(
    header: InvokeHeader,
    body: Uint8Array,
    options: InvokeOptions = {},
  ): Promise<InvokeOutcome> {
    if (this.#ended) throw new SatGoneError("the sat is not connected");
    options.signal?.throwIfAborted();
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
    const result = new Promise<InvokeOutcome>((resolve, reject) => {
      this.#pending.set(id, {
        resolve,
        reject,
        maxOutput: options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
        chunks: [],
        size: 0,
      });
    });
    const onAbort = () => this.#cancel(id, options.signal!.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const messages = encodeWithBody(INVOKE, id, header, body);
      await this.#channel.send(messages[0]!);
      for (let i = 1; i < messages.length && this.#pending.has(id); i++) {
        await this.#channel.send(messages[i]!);
      }
    } catch (error) {
      this.#settle(id, undefined, new SatGoneError("the sat went away", { cause: error }));
    }
    try {
      return await result;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Closes the channel; pending invocations fail with SatGoneError. */
  async close(): Promise<void> {
    await this.#channel.close();
    await this.#closed;
  }

  #cancel(id: number, reason: unknown): void {
    if (!this.#pending.has(id)) return;
    this.#settle(id, undefined, reason instanceof Error ? reason : new Error(String(reason)));
    this.#channel.send(encodeCancel(id)).catch(() => {});
  }

  #settle(id: number, outcome: InvokeOutcome | undefined, error?: Error): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (error) pending.reject(error);
    else pending.resolve(outcome!);
  }

  async #readLoop(): Promise<Error | undefined> {
    let failure: Error | undefined;
    try {
      for (
        let bytes = await this.#channel.receive();
        bytes;
        bytes = await this.#channel.receive()
      ) {
        const message = decodeInvocationMessage(bytes);
        if (message.type !== RESULT && message.type !== BODY) {
          throw new InvocationProtocolError(`unexpected message type ${message.type} from a sat`);
        }
        const pending = this.#pending.get(message.id);
        if (!pending) continue; // cancelled or timed out: drop the rest of its result
        if (message.type === RESULT) {
          if (pending.header) throw new InvocationProtocolError("a second RESULT for one id");
          pending.header = message.header;
        } else if (!pending.header) {
          throw new InvocationProtocolError("BODY before RESULT");
        }
        pending.size += message.chunk.length;
        if (pending.size > pending.maxOutput) {
          this.#settle(
            message.id,
            undefined,
            new OutputTooLargeError(`the output exceeds ${pending.maxOutput} bytes`),
          );
          this.#channel.send(encodeCancel(message.id)).catch(() => {});
          continue;
        }
        if (message.chunk.length > 0) pending.chunks.push(message.chunk);
        if (message.end) {
          const header = pending.header!;
          this.#settle(
            message.id,
            header.ok
              ? header.headers
                ? { ok: true, output: concatBytes(pending.chunks), headers: header.headers }
                : { ok: true, output: concatBytes(pending.chunks) }
              : { ok: false, code: header.code, message: header.message },
          );
        }
      }
    } catch (error) {
      failure = error as Error;
    }
    this.#ended = true;
    this.#error = failure;
    await this.#channel.close();
    for (const id of [...this.#pending.keys()]) {
      this.#settle(id, undefined, new SatGoneError("the sat went away", { cause: this.#error }));
    }
    return failure;
  }
}
