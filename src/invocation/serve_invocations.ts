/**
 * The sat's side of the invocation protocol: announce the functions, then run every INVOKE
 * that arrives, concurrently, and send back its result.
 *
 * @module
 */

import type { SecureChannel } from "../channel/mod.ts";
import { concatBytes } from "../wire/mod.ts";
import { ReceiveQueue, SendWindow } from "./_flow.ts";
import { sendWithBody } from "./_stream_sender.ts";
import {
  BLOB,
  BODY,
  CANCEL,
  decodeInvocationMessage,
  DEPLOY,
  encodeHello,
  encodePing,
  encodeReady,
  encodeWindow,
  encodeWithBody,
  type Hello,
  type InvocationOutcome,
  InvocationProtocolError,
  INVOKE,
  type InvokeHeader,
  MAX_CHUNK_LEN,
  PING,
  PONG,
  RESULT,
  type ResultHeader,
  WINDOW,
} from "./invocation_codec.ts";
import type { DeployManifest } from "./deployment_codec.ts";
import { Transfers } from "./_transfers.ts";
import { Cancellation } from "./cancellation.ts";

/** An empty output, for an error result. */
const EMPTY = new Uint8Array(0);

const NO_DELIVERY = "this sat runs only its own runnables (it was started with --runnables)";

/** What running an invocation gives (`notRun`: nothing ran, another sat may run it). */
export type RunOutcome = InvocationOutcome;

/**
 * A request body still arriving: `chunks` yields it as the proxy sends it, under flow control
 * (a chunk taken lets the proxy send more). `size` is the whole length when the client gave
 * it. The iterator throws a {@linkcode BodyError} when the body breaks a limit.
 */
export interface BodyStream {
  readonly size?: number;
  readonly chunks: AsyncIterable<Uint8Array>;
}

/** An invocation's input: all of it (the common case), or a {@linkcode BodyStream}. */
export type InvocationBody = Uint8Array | BodyStream;

/** A streamed request body broke a limit; `status` is the HTTP status to answer. */
export class BodyError extends Error {
  override readonly name = "BodyError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * All of `body` as bytes (a stream is read to its end).
 *
 * @throws BodyError from the stream
 */
export async function bodyBytes(body: InvocationBody): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body;
  const chunks: Uint8Array[] = [];
  for await (const chunk of body.chunks) chunks.push(chunk);
  return concatBytes(chunks, false);
}

/**
 * Runs one invocation; `cancellation` is cancelled when the proxy cancels it or the channel
 * ends (its `signal` is an AbortSignal, for code that takes one).
 */
export type InvocationRunner = (
  header: InvokeHeader,
  body: InvocationBody,
  cancellation: Cancellation,
) => Promise<RunOutcome>;

/** Options of serveInvocations. */
export interface ServeInvocationsOptions {
  /** Largest request body accepted; a larger one gets a 413 error result. Default 64 MiB. */
  readonly maxBodyBytes?: number;
  /** Most invocations running at once; more get a 503 error result. Default 256. */
  readonly maxInFlight?: number;
  /** What HELLO says beside the function names (digests, cached files, delivery). */
  readonly hello?: Omit<Hello, "functions">;
  /** Takes deployments from the proxy; without it a DEPLOY is answered with an error. */
  readonly delivery?: Delivery;
  /**
   * Aborting it drains the sat: it tells the proxy it runs nothing any more (READY with id 0),
   * lets the invocations running finish (at most `drainMs`), then closes the channel.
   */
  readonly stop?: AbortSignal;
  /** Longest wait for running invocations when stopping; default 10 s. */
  readonly drainMs?: number;
}

/** The sat's side of runnable delivery. */
export interface Delivery {
  /**
   * Keeps a delivered file, after checking that its content has digest `sha256`.
   *
   * @throws Error when it does not (the deployment then fails)
   */
  store(sha256: string, bytes: Uint8Array): Promise<void>;
  /**
   * Switches to the runnables and configuration of `manifest` (every file it names was
   * stored or was cached before); resolves with the functions now served.
   */
  deploy(manifest: DeployManifest): Promise<DeployedFunctions>;
}

/** The functions a deployment serves, as READY reports them. */
export interface DeployedFunctions {
  /** Key → SHA-256 of its module. */
  readonly functions: Readonly<Record<string, string>>;
  /** Keys of those whose modules never read the request (see Hello). */
  readonly requestless: readonly string[];
}

/** A request body arriving in chunks. */
interface Upload {
  readonly queue: ReceiveQueue;
  readonly limit: number;
  received: number;
}

/**
 * Serves invocations on `channel` until it closes; resolves then (with the error that ended
 * it, if any). Sends HELLO with `functions` first.
 *
 * @example
 * ```ts
 * await serveInvocations(channel, ["helloworld-rs"], async (header, body) => run(header, body));
 * ```
 */
export async function serveInvocations(
  channel: SecureChannel,
  functions: readonly string[],
  runner: InvocationRunner,
  options: ServeInvocationsOptions = {},
): Promise<Error | undefined> {
  const maxBody = options.maxBodyBytes ?? 64 * 1024 * 1024;
  const maxInFlight = options.maxInFlight ?? 256;
  const uploads = new Map<number, Upload>();
  const running = new Map<number, Cancellation>();
  /** Flow-control windows of results being sent, by invocation id. */
  const resultWindows = new Map<number, SendWindow>();
  const transfers = new Transfers();
  // Deployments apply one after the other, each after the files sent before it are stored.
  let deploying: Promise<unknown> = Promise.resolve();
  const delivery = options.delivery;

  const onTransfer = (done: ReturnType<Transfers["add"]>) => {
    if (!done) return;
    if (done.kind === "blob") {
      const { sha256, bytes } = done;
      deploying = deploying.then(() =>
        delivery ? delivery.store(sha256, bytes) : Promise.reject(new Error(NO_DELIVERY))
      ).catch((error) => (blobError ??= (error as Error).message));
      return;
    }
    const { id, manifest } = done;
    deploying = deploying.then(async () => {
      let report: Record<string, unknown>;
      try {
        if (!delivery) throw new Error(NO_DELIVERY);
        if (blobError !== undefined) throw new Error(blobError);
        const { functions, requestless } = await delivery.deploy(manifest);
        report = { functions, requestless };
      } catch (error) {
        report = { error: (error as Error).message };
      }
      blobError = undefined;
      await channel.send(encodeReady(id, report)).catch(() => {});
    });
  };
  let blobError: string | undefined;

  const reply = async (id: number, outcome: RunOutcome, cancellation: Cancellation) => {
    const header: ResultHeader = outcome.ok
      ? (outcome.headers ? { ok: true, headers: outcome.headers } : { ok: true })
      : outcome.notRun
      ? { ok: false, code: outcome.code, message: outcome.message, notRun: true }
      : { ok: false, code: outcome.code, message: outcome.message };
    const output = outcome.ok ? outcome.output : EMPTY;
    // An output that fits the RESULT goes in it at once: no window, no sender.
    // (Only tried for an output of at most one chunk: it encodes the whole output.)
    const single = output.length <= MAX_CHUNK_LEN ? encodeWithBody(RESULT, id, header, output) : [];
    if (single.length === 1) return await channel.send(single[0]!);
    const window = new SendWindow();
    resultWindows.set(id, window);
    try {
      await sendWithBody(
        (message) => channel.send(message),
        { type: RESULT, id, header },
        output,
        window,
        () => cancellation.reason === undefined,
      );
    } finally {
      resultWindows.delete(id);
    }
  };

  const start = (id: number, header: InvokeHeader, body: InvocationBody) => {
    const cancellation = new Cancellation();
    running.set(id, cancellation);
    (async () => {
      let outcome: RunOutcome;
      if (header.size !== undefined && header.size > maxBody) {
        outcome = { ok: false, code: 413, message: `the request body exceeds ${maxBody} bytes` };
      } else if (running.size > maxInFlight) {
        outcome = {
          ok: false,
          code: 503,
          message: "the sat is at its concurrency limit",
          notRun: true,
        };
      } else {
        try {
          outcome = await runner(header, body, cancellation);
        } catch (error) {
          outcome = {
            ok: false,
            code: error instanceof BodyError ? error.status : 500,
            message: (error as Error).message,
          };
        }
      }
      // The proxy no longer sends a body that was not read to its end.
      uploads.get(id)?.queue.fail(new BodyError(499, "the invocation has ended"));
      uploads.delete(id);
      if (cancellation.reason === undefined) {
        await reply(id, outcome, cancellation).catch(() => {});
      }
    })().finally(() => running.delete(id));
  };

  let failure: Error | undefined;
  const drain = async () => {
    await channel.send(encodeReady(0, { functions: {} })).catch(() => {});
    const deadline = performance.now() + (options.drainMs ?? 10_000);
    while (running.size > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await channel.close();
  };
  if (options.stop?.aborted) void drain();
  else options.stop?.addEventListener("abort", () => void drain(), { once: true });
  try {
    await channel.send(encodeHello(functions, options.hello));
    for (let bytes = await channel.receive(); bytes; bytes = await channel.receive()) {
      const message = decodeInvocationMessage(bytes);
      if (message.type === INVOKE) {
        if (running.has(message.id) || transfers.has(message.id)) {
          throw new InvocationProtocolError(`invocation id ${message.id} is already in use`);
        }
        if (message.end) {
          start(message.id, message.header, message.chunk);
          continue;
        }
        // A body in several messages: the runner reads it as it comes, under flow control.
        const id = message.id;
        const queue = new ReceiveQueue((bytes) => {
          channel.send(encodeWindow(id, bytes)).catch(() => {});
        });
        const limit = Math.min(maxBody, message.header.size ?? maxBody);
        const upload: Upload = { queue, limit, received: 0 };
        uploads.set(id, upload);
        receive(upload, message.chunk, false);
        start(id, message.header, {
          ...(message.header.size === undefined ? {} : { size: message.header.size }),
          chunks: queue,
        });
      } else if (message.type === BLOB || message.type === DEPLOY) {
        if (running.has(message.id)) {
          throw new InvocationProtocolError(`transfer id ${message.id} is already in use`);
        }
        onTransfer(transfers.start(message));
      } else if (message.type === BODY && transfers.has(message.id)) {
        onTransfer(transfers.add(message.id, message.chunk, message.end));
      } else if (message.type === BODY) {
        const upload = uploads.get(message.id);
        if (!upload) continue; // ended or cancelled before its body did
        receive(upload, message.chunk, message.end);
        if (message.end) uploads.delete(message.id);
      } else if (message.type === WINDOW) {
        resultWindows.get(message.id)?.grant(message.credit);
      } else if (message.type === PING) {
        // Answered at once, whatever runs: the proxy measures the sat's liveness by it.
        channel.send(encodePing(PONG, message.id)).catch(() => {});
      } else if (message.type === CANCEL) {
        const cancelled = new BodyError(499, "cancelled by the proxy");
        uploads.get(message.id)?.queue.fail(cancelled);
        uploads.delete(message.id);
        resultWindows.get(message.id)?.fail(cancelled);
        running.get(message.id)?.cancel(cancelled);
      } else {
        throw new InvocationProtocolError(`unexpected message type ${message.type} from a proxy`);
      }
    }
  } catch (error) {
    failure = error as Error;
  }
  // Runners still going are told to stop; their results have nowhere to go, so they are not
  // awaited (a runner that ignores its cancellation must not keep the sat's connection loop
  // alive).
  const ended = new BodyError(499, "the channel ended");
  for (const upload of uploads.values()) upload.queue.fail(ended);
  for (const window of resultWindows.values()) window.fail(ended);
  for (const cancellation of running.values()) cancellation.cancel(ended);
  await channel.close();
  return failure;

  /** Queues a chunk of an upload, unless the body breaks its limit (the runner is told). */
  function receive(upload: Upload, chunk: Uint8Array, end: boolean): void {
    upload.received += chunk.length;
    if (upload.received > upload.limit) {
      upload.queue.fail(
        new BodyError(413, `the request body exceeds ${upload.limit} bytes`),
      );
      return;
    }
    upload.queue.push(chunk, end);
  }
}
