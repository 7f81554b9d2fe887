/**
 * The sat's side of the invocation protocol: announce the functions, then run every INVOKE
 * that arrives, concurrently, and send back its result.
 *
 * @module
 */

import type { SecureChannel } from "../channel/mod.ts";
import { concatBytes } from "../wire/mod.ts";
import {
  BODY,
  CANCEL,
  decodeInvocationMessage,
  encodeHello,
  encodeWithBody,
  InvocationProtocolError,
  INVOKE,
  type InvokeHeader,
  RESULT,
  type ResultHeader,
} from "./invocation_codec.ts";

/** What running an invocation gives. */
export type RunOutcome =
  | {
    readonly ok: true;
    readonly output: Uint8Array;
    /** Response headers the function set. */
    readonly headers?: Readonly<Record<string, string>>;
  }
  | { readonly ok: false; readonly code: number; readonly message: string };

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

  const reply = async (id: number, outcome: RunOutcome) => {
    const header: ResultHeader = outcome.ok
      ? (outcome.headers ? { ok: true, headers: outcome.headers } : { ok: true })
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
        outcome = { ok: false, code: 503, message: "the sat is at its concurrency limit" };
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
  try {
    await channel.send(encodeHello(functions));
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
      } else if (message.type === BODY) {
        const request = incoming.get(message.id);
        if (!request) continue; // cancelled before its body ended
        append(request, message.chunk);
        if (message.end) {
          incoming.delete(message.id);
          start(message.id, request);
        }
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
