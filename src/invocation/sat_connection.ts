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
  encodeWindow,
  encodeWithBody,
  HELLO,
  type Hello,
  type InvocationOutcome,
  InvocationProtocolError,
  INVOKE,
  type InvokeHeader,
  MAX_CHUNK_LEN,
  PING,
  PONG,
  READY,
  RESULT,
  WINDOW,
} from "./invocation_codec.ts";
import type { DeployManifest } from "./deployment_codec.ts";
import { ReceiveQueue, SendWindow } from "./_flow.ts";
import { type OutgoingBody, sendWithBody } from "./_stream_sender.ts";
import type { Cancellation } from "./cancellation.ts";

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
export type InvokeOutcome = InvocationOutcome;

/**
 * How an invocation ended, its output as bytes when it came in one message, else as a stream
 * read under flow control (a slow reader slows this output only).
 */
export type StreamedOutcome =
  | {
    readonly ok: true;
    readonly output: Uint8Array | ReadableStream<Uint8Array>;
    readonly headers?: Readonly<Record<string, string>>;
  }
  | Extract<InvokeOutcome, { ok: false }>;

/** Options of one invocation. */
export interface InvokeOptions {
  /** Aborting sends CANCEL to the sat and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** The same as `signal`, cheaper: cancelling sends CANCEL and rejects with its reason. */
  readonly cancellation?: Cancellation;
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
/** The headers and params of an invocation of a function that never reads the request. */
const NOTHING: Readonly<Record<string, string>> = Object.freeze({});

function isEmpty(record: Readonly<Record<string, string>>): boolean {
  for (const _ in record) return false;
  return true;
}

/** Ends the body stream of an invocation the sat has answered (one instance: no stack each). */
const ANSWERED = new Error("the sat answered");

interface Pending {
  readonly resolve: (outcome: StreamedOutcome) => void;
  readonly reject: (error: Error) => void;
  readonly maxOutput: number;
  /** Credit for sending the request body. */
  /** The body's window; undefined when the body went whole in the INVOKE. */
  readonly window: SendWindow | undefined;
}

/** An output arriving in chunks, after its RESULT. */
interface ResultStream {
  readonly queue: ReceiveQueue;
  readonly maxOutput: number;
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
  /** Functions whose modules never read the request (HELLO, then each READY). */
  #requestless: ReadonlySet<string>;
  readonly #delivery: boolean;
  /** Digests of the files the sat holds (cached, its own, or delivered on this channel). */
  readonly #holds: Set<string>;
  readonly #deploys = new Map<
    number,
    { resolve: (f: Record<string, string>) => void; reject: (e: Error) => void }
  >();
  #deploying: Promise<unknown> = Promise.resolve();
  readonly #pending = new Map<number, Pending>();
  readonly #results = new Map<number, ResultStream>();
  readonly #closed: Promise<Error | undefined>;
  #nextId = 1;
  #error: Error | undefined;
  #ended = false;
  /**
   * When anything was last known to have arrived from the sat (performance.now()): set by the
   * heartbeat when {@linkcode #heard}, so at most one ping interval late, without a clock read
   * per message.
   */
  #lastHeard = performance.now();
  /** Something arrived since the heartbeat last looked. */
  #heard = false;
  readonly #unhealthyAfterMs: number;
  readonly #heartbeat: ReturnType<typeof setInterval>;

  private constructor(channel: SecureChannel, hello: Hello, options: SatConnectionOptions) {
    this.#channel = channel;
    this.#unhealthyAfterMs = options.unhealthyAfterMs ?? 1000;
    const closeAfterMs = options.closeAfterMs ?? 10_000;
    let ping = 0;
    this.#heartbeat = setInterval(() => {
      const now = performance.now();
      if (this.#heard) {
        this.#heard = false;
        this.#lastHeard = now;
      }
      if (now - this.#lastHeard > closeAfterMs) {
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
    this.#requestless = new Set(hello.requestless);
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

  /**
   * False when the sat said `fn`'s module never reads the request: its invocations then go
   * without the request's headers and params (which {@linkcode invokeStream} drops).
   */
  readsRequest(fn: string): boolean {
    return !this.#requestless.has(fn);
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
      // Invocations sent from now on may run on the new modules, which may read the request:
      // each gets its headers until the sat's READY says which never do.
      this.#requestless = new Set();
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
   * `unhealthyAfterMs` (give or take one ping interval): it is slow or gone, and is not picked.
   */
  get healthy(): boolean {
    return !this.#ended &&
      (this.#heard || performance.now() - this.#lastHeard <= this.#unhealthyAfterMs);
  }

  /** Invocations sent and not yet finished. */
  get inFlight(): number {
    return this.#pending.size + this.#results.size;
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
   * Runs `header.fn` on the sat with `body` as input, and collects its output.
   *
   * @throws SatGoneError when the sat goes away first; the signal's (or cancellation's)
   *   reason when aborted; OutputTooLargeError when the output exceeds maxOutputBytes
   */
  async invoke(
    header: InvokeHeader,
    body: Uint8Array,
    options: InvokeOptions = {},
  ): Promise<InvokeOutcome> {
    const outcome = await this.invokeStream(header, body, options);
    if (!outcome.ok || outcome.output instanceof Uint8Array) return outcome as InvokeOutcome;
    const stream = outcome.output;
    const { signal, cancellation } = options;
    const onAbort = () => stream.cancel(signal!.reason).catch(() => {});
    signal?.addEventListener("abort", onAbort, { once: true });
    cancellation?.onCancel((reason) => stream.cancel(reason).catch(() => {}));
    try {
      const chunks: Uint8Array[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      signal?.throwIfAborted();
      if (cancellation?.reason) throw cancellation.reason;
      const output = concatBytes(chunks, false);
      return outcome.headers
        ? { ok: true, output, headers: outcome.headers }
        : { ok: true, output };
    } finally {
      signal?.removeEventListener("abort", onAbort);
      cancellation?.onCancel(undefined);
    }
  }

  /**
   * Runs `header.fn` on the sat with `body` (all of it, or chunks read as the sat's window
   * allows: back-pressure to whoever produces them); resolves when the sat answers, with an
   * output stream when the output does not fit one message. Cancelling that stream cancels
   * the invocation.
   *
   * @throws NotDeliveredError when the sat was gone before the invocation reached it;
   *   SatGoneError when it goes away before answering; the signal's (or cancellation's)
   *   reason when aborted
   */
  async invokeStream(
    header: InvokeHeader,
    body: OutgoingBody,
    options: InvokeOptions = {},
  ): Promise<StreamedOutcome> {
    if (this.#ended) throw new NotDeliveredError("the sat is not connected");
    const { signal, cancellation } = options;
    signal?.throwIfAborted();
    if (cancellation?.reason) throw cancellation.reason;
    const id = this.#allocateId();
    // What a module cannot read is not sent.
    if (
      this.#requestless.has(header.fn) &&
      (!isEmpty(header.headers) || !isEmpty(header.params))
    ) {
      header = { ...header, headers: NOTHING, params: NOTHING };
    }
    // A body that fits the INVOKE goes in it at once: no window, no sender (the common case).
    // (Only tried for a body of at most one chunk: it encodes the whole body.)
    const single = body instanceof Uint8Array && body.length <= MAX_CHUNK_LEN
      ? encodeWithBody(INVOKE, id, header, body)
      : [];
    const window = single.length === 1 ? undefined : new SendWindow();
    const result = new Promise<StreamedOutcome>((resolve, reject) => {
      this.#pending.set(id, {
        resolve,
        reject,
        maxOutput: options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
        window,
      });
    });
    const onAbort = () => this.#cancel(id, signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    cancellation?.onCancel((reason) => this.#cancel(id, reason));
    let delivered = false;
    const send = (message: Uint8Array) =>
      this.#channel.send(message).then(() => void (delivered = true), (error) => {
        // Until the first message is out, the sat cannot have started the invocation.
        throw delivered
          ? new SatGoneError("the sat went away", { cause: error })
          : new NotDeliveredError("the sat went away", { cause: error });
      });
    const sent = window === undefined
      ? send(single[0]!)
      : sendWithBody(send, { type: INVOKE, id, header }, body, window, () => this.#pending.has(id));
    sent.catch((error) => {
      if (!this.#pending.has(id)) return; // answered or cancelled: the body is not wanted
      // The body's own error (e.g. it broke a limit) ends the invocation on the sat too.
      if (!(error instanceof SatGoneError)) {
        this.#channel.send(encodeCancel(id)).catch(() => {});
      }
      this.#settle(id, undefined, error);
    });
    try {
      return await result;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      cancellation?.onCancel(undefined);
    }
  }

  /** Closes the channel; pending invocations fail with SatGoneError. */
  async close(): Promise<void> {
    await this.#channel.close();
    await this.#closed;
  }

  #cancel(id: number, reason: unknown): void {
    const error = reason instanceof Error ? reason : new Error(String(reason));
    const stream = this.#results.get(id);
    if (stream) {
      this.#results.delete(id);
      stream.queue.fail(error);
    } else if (this.#pending.has(id)) this.#settle(id, undefined, error);
    else return;
    this.#channel.send(encodeCancel(id)).catch(() => {});
  }

  #settle(id: number, outcome: StreamedOutcome | undefined, error?: Error): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    pending.window?.fail(error ?? ANSWERED); // stop sending the body
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
        this.#heard = true;
        if (message.type === PONG) continue;
        if (message.type === READY && message.id === 0) {
          // The sat says what it runs now, unasked (it drains before stopping: nothing).
          if (!message.ready.ok) throw new InvocationProtocolError("READY 0 with an error");
          this.#functions.clear();
          for (const [key, sha] of Object.entries(message.ready.functions)) {
            this.#functions.set(key, sha);
          }
          this.#requestless = new Set(message.ready.requestless);
          continue;
        }
        if (message.type === READY) {
          const deploy = this.#deploys.get(message.id);
          if (!deploy) throw new InvocationProtocolError("READY for no deployment");
          if (message.ready.ok) {
            this.#requestless = new Set(message.ready.requestless);
            deploy.resolve(message.ready.functions);
          } else deploy.reject(new DeploymentError(message.ready.error));
          continue;
        }
        if (message.type === WINDOW) {
          this.#pending.get(message.id)?.window?.grant(message.credit);
          continue;
        }
        if (message.type === BODY) {
          const stream = this.#results.get(message.id);
          if (!stream) {
            if (this.#pending.has(message.id)) {
              throw new InvocationProtocolError("BODY before RESULT");
            }
            continue; // cancelled or timed out: drop the rest of its output
          }
          stream.size += message.chunk.length;
          if (stream.size > stream.maxOutput) {
            this.#cancel(
              message.id,
              new OutputTooLargeError(`the output exceeds ${stream.maxOutput} bytes`),
            );
            continue;
          }
          stream.queue.push(message.chunk, message.end);
          if (message.end) this.#results.delete(message.id);
          continue;
        }
        if (message.type !== RESULT) {
          throw new InvocationProtocolError(`unexpected message type ${message.type} from a sat`);
        }
        const pending = this.#pending.get(message.id);
        if (!pending) continue; // cancelled or timed out: drop its result
        const header = message.header;
        if (!header.ok) {
          if (!message.end) throw new InvocationProtocolError("an error RESULT with a body");
          this.#settle(
            message.id,
            header.notRun
              ? { ok: false, code: header.code, message: header.message, notRun: true }
              : { ok: false, code: header.code, message: header.message },
          );
          continue;
        }
        if (message.chunk.length > pending.maxOutput) {
          this.#settle(
            message.id,
            undefined,
            new OutputTooLargeError(`the output exceeds ${pending.maxOutput} bytes`),
          );
          this.#channel.send(encodeCancel(message.id)).catch(() => {});
          continue;
        }
        let output: Uint8Array | ReadableStream<Uint8Array>;
        if (message.end) {
          // The output stays a view into its decrypted frame: nothing else writes to that
          // buffer, and a copy here would cost an ArrayBuffer per request.
          output = message.chunk;
        } else {
          const id = message.id;
          const queue = new ReceiveQueue((bytes) => {
            this.#channel.send(encodeWindow(id, bytes)).catch(() => {});
          });
          queue.push(message.chunk, false);
          this.#results.set(id, {
            queue,
            maxOutput: pending.maxOutput,
            size: message.chunk.length,
          });
          output = queue.readable((reason) => this.#cancel(id, reason ?? "the reader cancelled"));
        }
        this.#settle(
          message.id,
          header.headers ? { ok: true, output, headers: header.headers } : { ok: true, output },
        );
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
    for (const stream of this.#results.values()) {
      stream.queue.fail(new SatGoneError("the sat went away", { cause: this.#error }));
    }
    this.#results.clear();
    return this.#error;
  }
}
