/**
 * The proxy's side of the invocation protocol: one connected, trusted sat, reached through a
 * secure channel, running many invocations at once.
 *
 * @module
 */

import type { SecureChannel } from "../channel/mod.ts";
import { concatBytes } from "../wire/mod.ts";
import {
  BLOB,
  BODY,
  decodeInvocationMessage,
  DEPLOY,
  encodeCancel,
  encodePing,
  encodeWithBody,
  HELLO,
  type Hello,
  InvocationProtocolError,
  INVOKE,
  type InvokeHeader,
  PING,
  PONG,
  READY,
  RESULT,
  type ResultHeader,
} from "./invocation_codec.ts";
import type { DeployManifest } from "./deployment_codec.ts";

/** The sat went away (channel closed or broke) before the invocation finished. */
export class SatGoneError extends Error {
  override readonly name: string = "SatGoneError";
}

/** The sat went away before the invocation reached it: it did not run, another sat may. */
export class NotDeliveredError extends SatGoneError {
  override readonly name = "NotDeliveredError";
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
  | {
    readonly ok: false;
    readonly code: number;
    readonly message: string;
    /** The sat did not run it (at its limit): another sat may. */
    readonly notRun?: true;
  };

/** Options of one invocation. */
export interface InvokeOptions {
  /** Aborting sends CANCEL to the sat and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Largest output accepted; default 64 MiB. */
  readonly maxOutputBytes?: number;
}

/** A sat refused or failed a deployment. */
export class DeploymentError extends Error {
  override readonly name = "DeploymentError";
}

/** Options of SatConnection.accept. */
export interface SatConnectionOptions {
  /** How long to wait for the sat's HELLO; default 10 s. */
  readonly helloTimeoutMs?: number;
  /** How often to PING the sat; default 250 ms. */
  readonly pingIntervalMs?: number;
  /** Not picked once nothing was heard from it for this long; default 1 s. */
  readonly unhealthyAfterMs?: number;
  /** Closed once nothing was heard from it for this long; default 10 s. */
  readonly closeAfterMs?: number;
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
  readonly #functions: Map<string, string>;
  readonly #delivery: boolean;
  /** Digests of the files the sat holds (cached, its own, or delivered on this channel). */
  readonly #holds: Set<string>;
  readonly #deploys = new Map<
    number,
    { resolve: (f: Record<string, string>) => void; reject: (e: Error) => void }
  >();
  #deploying: Promise<unknown> = Promise.resolve();
  readonly #pending = new Map<number, Pending>();
  readonly #closed: Promise<Error | undefined>;
  #nextId = 1;
  #error: Error | undefined;
  #ended = false;
  /** When anything last arrived from the sat (performance.now()). */
  #lastHeard = performance.now();
  readonly #unhealthyAfterMs: number;
  readonly #heartbeat: ReturnType<typeof setInterval>;

  private constructor(channel: SecureChannel, hello: Hello, options: SatConnectionOptions) {
    this.#channel = channel;
    this.#unhealthyAfterMs = options.unhealthyAfterMs ?? 1000;
    const closeAfterMs = options.closeAfterMs ?? 10_000;
    let ping = 0;
    this.#heartbeat = setInterval(() => {
      if (performance.now() - this.#lastHeard > closeAfterMs) {
        this.#error ??= new SatGoneError(
          `the sat did not answer health checks for ${closeAfterMs} ms`,
        );
        this.#channel.close();
        return;
      }
      ping = ping >= 0xffff_fffe ? 1 : ping + 1;
      this.#channel.send(encodePing(PING, ping)).catch(() => {});
    }, options.pingIntervalMs ?? 250);
    this.#functions = new Map(hello.functions.map((key) => [key, hello.digests?.[key] ?? ""]));
    this.#delivery = hello.delivery ?? false;
    this.#holds = new Set([...hello.cached ?? [], ...Object.values(hello.digests ?? {})]);
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
      return new SatConnection(channel, message, options);
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

  /** The functions the sat runs now: key → SHA-256 of its module ("" when not announced). */
  get functions(): ReadonlyMap<string, string> {
    return this.#functions;
  }

  /** True when the sat takes runnables from the proxy. */
  get delivery(): boolean {
    return this.#delivery;
  }

  /**
   * Delivers a deployment: sends each file of `manifest` the sat does not hold (from `files`,
   * by digest), then the manifest, and waits for the sat to switch to it. Deployments to one
   * sat apply in the order they are made.
   *
   * @returns the functions the sat runs afterwards (also in {@linkcode functions})
   * @throws DeploymentError when the sat refuses it or does not answer within `timeoutMs`;
   *   SatGoneError when the channel ends first
   */
  deploy(
    manifest: DeployManifest,
    files: ReadonlyMap<string, Uint8Array>,
    options: { timeoutMs?: number } = {},
  ): Promise<ReadonlyMap<string, string>> {
    const run = this.#deploying.then(() => this.#deployNow(manifest, files, options.timeoutMs));
    this.#deploying = run.catch(() => {});
    return run;
  }

  async #deployNow(
    manifest: DeployManifest,
    files: ReadonlyMap<string, Uint8Array>,
    timeoutMs = 60_000,
  ): Promise<ReadonlyMap<string, string>> {
    if (this.#ended) throw new SatGoneError("the sat is not connected");
    const wanted = new Set([
      ...Object.values(manifest.runnables),
      ...Object.values(manifest.static),
    ]);
    try {
      for (const sha256 of wanted) {
        if (this.#holds.has(sha256)) continue;
        const bytes = files.get(sha256);
        if (!bytes) throw new DeploymentError(`no file with digest ${sha256} to deliver`);
        for (
          const message of encodeWithBody(
            BLOB,
            this.#allocateId(),
            { sha256, size: bytes.length },
            bytes,
          )
        ) {
          await this.#channel.send(message);
        }
        this.#holds.add(sha256);
      }
      const id = this.#allocateId();
      const json = new TextEncoder().encode(JSON.stringify(manifest));
      const ready = new Promise<Record<string, string>>((resolve, reject) => {
        this.#deploys.set(id, { resolve, reject });
      });
      for (const message of encodeWithBody(DEPLOY, id, { size: json.length }, json)) {
        await this.#channel.send(message);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const functions = await Promise.race([
        ready,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new DeploymentError(`the sat did not apply the deployment within ${timeoutMs} ms`),
              ),
            timeoutMs,
          );
        }),
      ]).finally(() => {
        clearTimeout(timer);
        this.#deploys.delete(id);
      });
      this.#functions.clear();
      for (const [key, sha256] of Object.entries(functions)) this.#functions.set(key, sha256);
      return this.#functions;
    } catch (error) {
      if (error instanceof DeploymentError) throw error;
      throw this.#ended ? new SatGoneError("the sat went away", { cause: error }) : error;
    }
  }

  #allocateId(): number {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
    return id;
  }

  /**
   * False when nothing (not even the answer to a health check) came from the sat for
   * `unhealthyAfterMs`: it is slow or gone, and is not picked.
   */
  get healthy(): boolean {
    return !this.#ended && performance.now() - this.#lastHeard <= this.#unhealthyAfterMs;
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
    if (this.#ended) throw new NotDeliveredError("the sat is not connected");
    options.signal?.throwIfAborted();
    const id = this.#allocateId();
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
      try {
        await this.#channel.send(messages[0]!);
      } catch (error) {
        // The INVOKE was not sent, so the sat cannot have started it.
        this.#settle(id, undefined, new NotDeliveredError("the sat went away", { cause: error }));
      }
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
        this.#lastHeard = performance.now();
        if (message.type === PONG) continue;
        if (message.type === READY && message.id === 0) {
          // The sat says what it runs now, unasked (it drains before stopping: nothing).
          if (!message.ready.ok) throw new InvocationProtocolError("READY 0 with an error");
          this.#functions.clear();
          for (const [key, sha] of Object.entries(message.ready.functions)) {
            this.#functions.set(key, sha);
          }
          continue;
        }
        if (message.type === READY) {
          const deploy = this.#deploys.get(message.id);
          if (!deploy) throw new InvocationProtocolError("READY for no deployment");
          if (message.ready.ok) deploy.resolve(message.ready.functions);
          else deploy.reject(new DeploymentError(message.ready.error));
          continue;
        }
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
              : header.notRun
              ? { ok: false, code: header.code, message: header.message, notRun: true }
              : { ok: false, code: header.code, message: header.message },
          );
        }
      }
    } catch (error) {
      failure = error as Error;
    }
    this.#ended = true;
    clearInterval(this.#heartbeat);
    // A health-check timeout that closed the channel says more than the read it broke.
    this.#error = this.#error ?? failure;
    await this.#channel.close();
    for (const id of [...this.#pending.keys()]) {
      this.#settle(id, undefined, new SatGoneError("the sat went away", { cause: this.#error }));
    }
    for (const deploy of this.#deploys.values()) {
      deploy.reject(new SatGoneError("the sat went away", { cause: this.#error }));
    }
    return this.#error;
  }
}
