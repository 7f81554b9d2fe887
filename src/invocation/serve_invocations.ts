/**
 * The sat's side of the invocation protocol: announce the functions, then run every INVOKE
 * that arrives, concurrently, and send back its result.
 *
 * @module
 */

import type { SecureChannel } from "../channel/mod.ts";
import { concatBytes } from "../wire/mod.ts";
import {
  BLOB,
  BODY,
  CANCEL,
  decodeInvocationMessage,
  DEPLOY,
  encodeHello,
  encodePing,
  encodeReady,
  encodeWithBody,
  type Hello,
  InvocationProtocolError,
  INVOKE,
  type InvokeHeader,
  PING,
  PONG,
  RESULT,
  type ResultHeader,
} from "./invocation_codec.ts";
import type { DeployManifest } from "./deployment_codec.ts";
import { Transfers } from "./_transfers.ts";

const NO_DELIVERY = "this sat runs only its own runnables (it was started with --runnables)";

/** What running an invocation gives. */
export type RunOutcome =
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
    /** Nothing ran: the proxy may send it to another sat. */
    readonly notRun?: true;
  };

/** Runs one invocation; the signal aborts when the proxy cancels it or the channel ends. */
export type InvocationRunner = (
  header: InvokeHeader,
  body: Uint8Array,
  signal: AbortSignal,
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
   * stored or was cached before); resolves with the functions now served, key → SHA-256.
   */
  deploy(manifest: DeployManifest): Promise<Record<string, string>>;
}

interface Incoming {
  readonly header: InvokeHeader;
  readonly chunks: Uint8Array[];
  size: number;
  tooLarge: boolean;
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
  const incoming = new Map<number, Incoming>();
  const running = new Map<number, AbortController>();
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
        report = { functions: await delivery.deploy(manifest) };
      } catch (error) {
        report = { error: (error as Error).message };
      }
      blobError = undefined;
      await channel.send(encodeReady(id, report)).catch(() => {});
    });
  };
  let blobError: string | undefined;

  const reply = async (id: number, outcome: RunOutcome) => {
    const header: ResultHeader = outcome.ok
      ? (outcome.headers ? { ok: true, headers: outcome.headers } : { ok: true })
      : outcome.notRun
      ? { ok: false, code: outcome.code, message: outcome.message, notRun: true }
      : { ok: false, code: outcome.code, message: outcome.message };
    const output = outcome.ok ? outcome.output : new Uint8Array(0);
    const messages = encodeWithBody(RESULT, id, header, output);
    await channel.send(messages[0]!);
    for (let i = 1; i < messages.length; i++) {
      if (running.get(id)?.signal.aborted) return;
      await channel.send(messages[i]!);
    }
  };

  const start = (id: number, request: Incoming) => {
    const controller = new AbortController();
    running.set(id, controller);
    (async () => {
      let outcome: RunOutcome;
      if (request.tooLarge) {
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
          outcome = await runner(
            request.header,
            concatBytes(request.chunks, false),
            controller.signal,
          );
        } catch (error) {
          outcome = { ok: false, code: 500, message: (error as Error).message };
        }
      }
      if (!controller.signal.aborted) await reply(id, outcome).catch(() => {});
    })().finally(() => running.delete(id));
  };

  let failure: Error | undefined;
  const drain = async () => {
    await channel.send(encodeReady(0, { functions: {} })).catch(() => {});
    const deadline = performance.now() + (options.drainMs ?? 10_000);
    while ((running.size > 0 || incoming.size > 0) && performance.now() < deadline) {
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
        if (incoming.has(message.id) || running.has(message.id)) {
          throw new InvocationProtocolError(`invocation id ${message.id} is already in use`);
        }
        const request: Incoming = { header: message.header, chunks: [], size: 0, tooLarge: false };
        incoming.set(message.id, request);
        append(request, message.chunk);
        if (message.end) {
          incoming.delete(message.id);
          start(message.id, request);
        }
      } else if (message.type === BLOB || message.type === DEPLOY) {
        if (incoming.has(message.id) || running.has(message.id)) {
          throw new InvocationProtocolError(`transfer id ${message.id} is already in use`);
        }
        onTransfer(transfers.start(message));
      } else if (message.type === BODY && transfers.has(message.id)) {
        onTransfer(transfers.add(message.id, message.chunk, message.end));
      } else if (message.type === BODY) {
        const request = incoming.get(message.id);
        if (!request) continue; // cancelled before its body ended
        append(request, message.chunk);
        if (message.end) {
          incoming.delete(message.id);
          start(message.id, request);
        }
      } else if (message.type === PING) {
        // Answered at once, whatever runs: the proxy measures the sat's liveness by it.
        channel.send(encodePing(PONG, message.id)).catch(() => {});
      } else if (message.type === CANCEL) {
        incoming.delete(message.id);
        running.get(message.id)?.abort(new Error("cancelled by the proxy"));
      } else {
        throw new InvocationProtocolError(`unexpected message type ${message.type} from a proxy`);
      }
    }
  } catch (error) {
    failure = error as Error;
  }
  // Runners still going are told to stop; their results have nowhere to go, so they are not
  // awaited (a runner that ignores its signal must not keep the sat's connection loop alive).
  for (const controller of running.values()) controller.abort(new Error("the channel ended"));
  await channel.close();
  return failure;

  function append(request: Incoming, chunk: Uint8Array): void {
    request.size += chunk.length;
    if (request.size > maxBody) {
      request.tooLarge = true;
      request.chunks.length = 0;
    } else if (chunk.length > 0) request.chunks.push(chunk);
  }
}
