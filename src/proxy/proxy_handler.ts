/**
 * The proxy's HTTP handler: route by Directive, run the handler's steps on connected sats
 * through the invocation protocol, answer with the output or a clear error, never hang.
 *
 * Errors (bodies in Atmo's JSON shape `{"status":N,"message":"..."}`): 404 no route, 405
 * wrong method (with `Allow`), 413 body over the limit, 503 no sat can run the function, 502
 * the sat went away mid-request, 504 the function did not answer in time, and a function
 * error as its own code (500 when outside 200-599).
 *
 * @module
 */

import {
  Cancellation,
  type InvokeHeader,
  type InvokeOutcome,
  NotDeliveredError,
  type OutgoingBody,
  OutputTooLargeError,
  type SatConnection,
  SatGoneError,
  type StreamedOutcome,
} from "../invocation/mod.ts";
import type { Logger } from "../cli/mod.ts";
import {
  atmoStringMap,
  type FnStep,
  type HandlerBase,
  runSteps,
  type StepsOutcome,
} from "../directive/mod.ts";
import { concatBytes } from "../wire/mod.ts";
import type { SatRegistry } from "./sat_registry.ts";
import { fnKey } from "./runnable_locator.ts";
import { Deadlines } from "./_deadlines.ts";
import type { ProxyMetrics } from "./proxy_metrics.ts";
import { type OpsEndpointOptions, opsResponse } from "../metrics/mod.ts";

/** What a route resolves to. */
export type RouteResolution =
  | {
    readonly kind: "found";
    /** The handler whose steps run (Atmo semantics, see directive/run_steps.ts). */
    readonly handler: Pick<HandlerBase, "steps" | "response">;
    readonly params: Readonly<Record<string, string>>;
    /** Headless mode: the request state starts from the X-Atmo-State header. */
    readonly seedStateFromHeader?: boolean;
    /** A stream handler: the request is upgraded to a WebSocket. */
    readonly stream?: boolean;
    /** The route as the Directive writes it (e.g. `/users/:id`), for metrics and logs. */
    readonly route?: string;
  }
  | { readonly kind: "method-not-allowed"; readonly allowed: readonly string[] }
  | { readonly kind: "not-found" };

/** Options of createProxyHandler. */
export interface ProxyHandlerOptions {
  /** Resolves method + path against the current Directive (it may change between calls). */
  readonly resolve: (method: string, path: string) => RouteResolution;
  /** Connected sats. */
  readonly sats: SatRegistry;
  /** Largest request body; default 10 MiB. */
  readonly maxBodyBytes?: number;
  /** Largest function output held whole (multi-step handlers); default 64 MiB. */
  readonly maxOutputBytes?: number;
  /** Time limit per function invocation; default 30 s. */
  readonly timeoutMs?: number;
  readonly log: Logger;
  /** Where requests and invocations are counted. */
  readonly metrics?: ProxyMetrics;
  /** `/metrics`, `/health` and `/ready`, answered before any Directive route. */
  readonly ops?: OpsEndpointOptions;
}

/** Default request body limit. */
export const DEFAULT_MAX_BODY_BYTES: number = 10 * 1024 * 1024;
/** Default time limit of one invocation. */
export const DEFAULT_TIMEOUT_MS = 30_000;

class HttpError extends Error {
  override readonly name = "HttpError";
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

function errorResponse(status: number, message: string, requestId: string, headers = {}): Response {
  return new Response(JSON.stringify({ status, message }), {
    status,
    headers: { "content-type": "application/json", "x-request-id": requestId, ...headers },
  });
}

/**
 * Most bytes of request headers passed to a function (they travel in the invocation's header,
 * itself at most MAX_JSON_HEADER_LEN); more gets 431.
 */
export const MAX_HEADER_BYTES: number = 8 * 1024;

/** Bodies up to this size are read whole; larger ones stream to the sat. */
const STREAM_THRESHOLD = 64 * 1024;

/** The fn of a handler that is one fn step answering with its own output, else undefined. */
function singleFn(handler: Pick<HandlerBase, "steps" | "response">): FnStep | undefined {
  const [step, ...rest] = handler.steps;
  if (rest.length > 0 || step?.kind !== "fn" || handler.response !== step.as) return undefined;
  // Only the default error policy: any other needs the steps' state machinery.
  const policy = step.onErr;
  return policy.other === "return" && Object.keys(policy.codes).length === 0 ? step : undefined;
}

/**
 * Bytes a streamed request body is read in at first, then, once a read fills them, at most:
 * while a large body flows, Deno.serve holds hundreds of KiB, and one read of 256 KiB costs a
 * fraction of four of 64 KiB (the stream machinery per read, not the bytes, is the cost).
 */
const FIRST_READ_LEN = 64 * 1024;
const MAX_READ_LEN = 256 * 1024;

/**
 * `body`'s chunks for streaming to a sat, failing with 413 once they pass `max` bytes. A byte
 * stream (every body Deno.serve hands over) is read with a BYOB reader into one buffer, reused:
 * each chunk is a view of it, valid until the next is asked for (the stream sender copies it
 * first). Nothing is read, and the body stays unlocked, until the first chunk is asked for: a
 * body never read lets Deno.serve end the connection after the response.
 */
async function* limited(body: ReadableStream<Uint8Array>, max: number): AsyncGenerator<Uint8Array> {
  let size = 0;
  const count = (bytes: number) => {
    size += bytes;
    if (size > max) throw new HttpError(413, `the request body exceeds the limit of ${max} bytes`);
  };
  let reader: ReadableStreamBYOBReader;
  try {
    reader = body.getReader({ mode: "byob" });
  } catch {
    // Not a byte stream: chunk by chunk.
    for await (const chunk of body) {
      count(chunk.length);
      yield chunk;
    }
    return;
  }
  let ended = false;
  try {
    for (let buffer = new ArrayBuffer(FIRST_READ_LEN);;) {
      const { value } = await reader.read(new Uint8Array(buffer));
      // Undefined only once the stream was cancelled: the body is incomplete.
      if (value === undefined) throw new HttpError(400, "the request body was cancelled");
      if (value.length === 0) {
        ended = true;
        return;
      }
      count(value.length);
      // A read hands its buffer back (transferred); one it filled asks for a larger one.
      buffer = value.length === value.buffer.byteLength && value.length < MAX_READ_LEN
        ? new ArrayBuffer(MAX_READ_LEN)
        : value.buffer;
      yield value;
    }
  } finally {
    // Stopped early (the sat answered, or failed): the rest of the body is not wanted.
    if (!ended) reader.cancel().catch(() => {});
  }
}

/**
 * A 200 response with `output`, the headers the steps set (Atmo merges them), then ours. The
 * headers are set on the made response: in Deno 2.9 a `headers` init costs about 2 µs more per
 * response than `headers.set` (the init's record conversion).
 *
 * @throws HttpError 500 when a function set an invalid header
 */
function okResponse(
  output: BodyInit,
  set: Readonly<Record<string, string>> | undefined,
  requestId: string,
): Response {
  const response = new Response(output);
  const headers = response.headers;
  if (set !== undefined) {
    try {
      for (const name in set) headers.set(name, set[name]!);
    } catch (error) {
      throw new HttpError(
        500,
        `a function set an invalid response header: ${(error as Error).message}`,
      );
    }
  }
  headers.set("x-request-id", requestId);
  return response;
}

/** Reads the body, refusing one over `max` bytes without buffering more than that. */
async function readBody(request: Request, max: number): Promise<Uint8Array> {
  const tooLarge = () => new HttpError(413, `the request body exceeds the limit of ${max} bytes`);
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    // A declared length is enforced by the HTTP server, so the fast whole-body read is safe.
    // `request.body` is not touched first: in Deno.serve that builds a ReadableStream, which
    // arrayBuffer() otherwise skips (measured +11 µs per request).
    if (Number(declared) > max) throw tooLarge();
    return new Uint8Array(await request.arrayBuffer());
  }
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      size += r.value.length;
      if (size > max) {
        await reader.cancel();
        throw tooLarge();
      }
      chunks.push(r.value);
    }
  } finally {
    reader.releaseLock();
  }
  return concatBytes(chunks, false);
}

/**
 * Stream handlers (Atmo): each text message runs the handler's steps with the message as the
 * body; the result (or the error as Atmo's JSON) is sent back, in message order.
 */
function serveStream(
  socket: WebSocket,
  run: (message: Uint8Array) => Promise<StepsOutcome>,
): void {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let queue = Promise.resolve();
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") {
      socket.close(1003, "send text messages");
      return;
    }
    const message = encoder.encode(event.data);
    queue = queue.then(async () => {
      let reply: string;
      try {
        const outcome = await run(message);
        reply = outcome.ok
          ? decoder.decode(outcome.body)
          : JSON.stringify({ status: outcome.code, message: outcome.message });
      } catch (error) {
        const status = error instanceof InvocationFailure ? error.status : 500;
        reply = JSON.stringify({ status, message: (error as Error).message });
      }
      if (socket.readyState === WebSocket.OPEN) socket.send(reply);
    });
  };
}

/** Headless mode's initial state: X-Atmo-State, a JSON object of strings (Atmo). */
function stateFromHeader(request: Request): Map<string, Uint8Array> {
  let values: Record<string, string> | undefined;
  try {
    values = atmoStringMap(request.headers, "X-Atmo-State");
  } catch (error) {
    throw new HttpError(400, (error as Error).message);
  }
  const encoder = new TextEncoder();
  return new Map(Object.entries(values ?? {}).map(([key, value]) => [key, encoder.encode(value)]));
}

/** The request state as the invocation protocol carries it: base64 values. */
function encodeState(state: ReadonlyMap<string, Uint8Array>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of state) out[key] = value.toBase64();
  return out;
}

/**
 * The headers of an invocation whose function never reads the request, left uncollected; an
 * invoker from {@linkcode createStreamInvoker} fills them in for a sat that reads them after all.
 */
export const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * The request's headers as a function gets them (lower-case names).
 *
 * @throws HttpError 431 when they take more than {@linkcode MAX_HEADER_BYTES}
 */
function requestHeaders(request: Request): Record<string, string> {
  const headers: Record<string, string> = {};
  let bytes = 0;
  request.headers.forEach((value, key) => {
    headers[key] = value;
    bytes += key.length + value.length + 4;
  });
  if (bytes > MAX_HEADER_BYTES) {
    throw new HttpError(
      431,
      `the request headers take ${bytes} bytes; at most ${MAX_HEADER_BYTES} reach a function`,
    );
  }
  return headers;
}

/** Path and query of an absolute request URL, without a full URL parse. */
function pathAndQuery(url: string): { path: string; query: string } {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return { path: "/", query: "" };
  const q = url.indexOf("?", start);
  const hash = url.indexOf("#", start);
  const end = hash < 0 ? url.length : hash;
  return q < 0 || q > end
    ? { path: url.slice(start, end), query: "" }
    : { path: url.slice(start, q), query: url.slice(q, end) };
}

// Request ids: a random per-process prefix and a counter, unique without a CSPRNG call each.
const REQUEST_ID_PREFIX = Array.from(
  crypto.getRandomValues(new Uint8Array(4)),
  (b) => b.toString(16).padStart(2, "0"),
).join("");
let requestCounter = 0;

function newRequestId(): string {
  requestCounter = (requestCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${REQUEST_ID_PREFIX}-${requestCounter.toString(36)}`;
}

/** Runs one function on the least busy connected sat that has it. */
export type Invoker = (
  fn: string,
  header: InvokeHeader,
  body: Uint8Array,
  signal?: ClientSignal,
) => Promise<InvokeOutcome>;

/**
 * Aborts when the client goes away. A function giving it is asked only once an invocation has
 * run for a while ({@linkcode LATE_MS}): in Deno.serve, merely listening on `request.signal`
 * costs every request a few microseconds, and quick ones finish before it could matter.
 */
export type ClientSignal = AbortSignal | (() => AbortSignal);

/** How long an invocation runs before the proxy starts watching for its client going away. */
export const LATE_MS = 25;

/** A failed invocation as the HTTP status a client gets and a message. */
export class InvocationFailure extends Error {
  override readonly name = "InvocationFailure";
  /** 503 no sat, 502 the sat went away, 504 timeout, 499 the client went away. */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * An Invoker with the proxy's time limit.
 *
 * @throws InvocationFailure (from the returned function) with the status to answer
 */
export function createInvoker(
  options: Pick<ProxyHandlerOptions, "sats" | "timeoutMs" | "maxOutputBytes" | "metrics">,
): Invoker {
  const invoke = invoker(options);
  return (fn, header, body, signal) =>
    invoke(fn, header, body, signal, false) as Promise<InvokeOutcome>;
}

/**
 * Like {@linkcode createInvoker}, for a request whose body and output stream through: the body
 * may be chunks (read as the sat's window allows), and the output is a stream when it does not
 * fit one message. A header whose `headers` are {@linkcode NO_HEADERS} gets them from
 * `headersOf` when the sat picked runs a module that reads the request (the sats may have
 * changed since the caller looked).
 */
export function createStreamInvoker(
  options: Pick<ProxyHandlerOptions, "sats" | "timeoutMs" | "maxOutputBytes" | "metrics">,
): (
  fn: string,
  header: InvokeHeader,
  body: OutgoingBody,
  signal?: ClientSignal,
  headersOf?: () => Readonly<Record<string, string>>,
) => Promise<StreamedOutcome> {
  const invoke = invoker(options);
  return (fn, header, body, signal, headersOf) => invoke(fn, header, body, signal, true, headersOf);
}

type AnyInvoker = (
  fn: string,
  header: InvokeHeader,
  body: OutgoingBody,
  signal: ClientSignal | undefined,
  stream: boolean,
  headersOf?: () => Readonly<Record<string, string>>,
) => Promise<StreamedOutcome>;

/** Invocation outcomes by the status of an InvocationFailure. */
const OUTCOMES: Record<number, string> = {
  499: "cancelled",
  502: "sat_gone",
  503: "no_sat",
  504: "timeout",
};

/** Invokes on a sat that can run `fn`, counting each invocation by function and outcome. */
function invoker(
  options: Pick<ProxyHandlerOptions, "sats" | "timeoutMs" | "maxOutputBytes" | "metrics">,
): AnyInvoker {
  const counter = options.metrics?.invocations;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadlines = new Deadlines(timeoutMs);
  const late = new Deadlines(LATE_MS);
  return async (fn, header, body, clientSignal, stream, headersOf) => {
    // Not an AbortController: no signal and no event listener on every request.
    const cancellation = new Cancellation();
    const now = performance.now();
    const timer = deadlines.add(() =>
      cancellation.cancel(
        new InvocationFailure(504, `"${fn}" did not answer within ${timeoutMs} ms`),
      ), now);
    const onClientGone = () =>
      cancellation.cancel(new InvocationFailure(499, "the client went away"));
    let watched: AbortSignal | undefined;
    const watch = () => {
      watched = typeof clientSignal === "function" ? clientSignal() : clientSignal;
      if (watched?.aborted) onClientGone();
      else watched?.addEventListener("abort", onClientGone, { once: true });
    };
    const lateWatch = typeof clientSignal === "function"
      ? late.add(watch, now)
      : (watch(), undefined);
    // An invocation that never reached a sat, or that a sat refused without running it, goes
    // to the next one; one that may have run is never repeated.
    const tried = new Set<SatConnection>();
    let counted = "failed";
    try {
      while (true) {
        const sat = options.sats.pick(fn, tried);
        if (!sat) {
          throw new InvocationFailure(
            503,
            tried.size === 0
              ? `no connected sat can run "${fn}"; start one`
              : `no sat could take "${fn}" (tried ${tried.size})`,
          );
        }
        tried.add(sat);
        // A streamed output is never held whole here: the sat's own --max-output bounds it.
        const invokeOptions = {
          cancellation,
          maxOutputBytes: stream ? Number.POSITIVE_INFINITY : options.maxOutputBytes,
        };
        let outcome: StreamedOutcome;
        try {
          outcome = stream
            ? await sat.invokeStream(
              header.headers === NO_HEADERS && headersOf && sat.readsRequest(fn)
                ? { ...header, headers: headersOf() }
                : header,
              body,
              invokeOptions,
            )
            : await sat.invoke(header, body as Uint8Array, invokeOptions);
        } catch (error) {
          if (error instanceof NotDeliveredError) continue;
          throw error;
        }
        // A streamed body was read while it was sent: it cannot go to another sat.
        if (!outcome.ok && outcome.notRun && body instanceof Uint8Array) continue;
        counted = outcome.ok ? "ok" : "error";
        return outcome;
      }
    } catch (error) {
      const failure = error instanceof SatGoneError
        ? new InvocationFailure(502, `the sat running "${fn}" went away before it answered`)
        : error instanceof OutputTooLargeError
        ? new InvocationFailure(502, error.message)
        : error;
      if (failure instanceof InvocationFailure) counted = OUTCOMES[failure.status] ?? "failed";
      throw failure;
    } finally {
      counter?.inc({ fn, outcome: counted });
      timer.clear();
      lateWatch?.clear();
      watched?.removeEventListener("abort", onClientGone);
    }
  };
}

/**
 * The proxy's `(Request) => Promise<Response>`.
 *
 * @example
 * ```ts
 * Deno.serve(createProxyHandler({ resolve, sats, log }));
 * ```
 */
export function createProxyHandler(
  options: ProxyHandlerOptions,
): (request: Request) => Promise<Response> {
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const log = options.log;

  const invoke = createInvoker(options);
  const streamInvoke = createStreamInvoker(options);

  return async (request: Request): Promise<Response> => {
    const requestId = request.headers.get("x-request-id") ?? newRequestId();
    const url = pathAndQuery(request.url);
    // The Directive may not declare these paths, but a `:param` or catch-all could match them.
    const ops = options.ops && opsResponse(request.method, url.path, options.ops);
    if (ops) return ops;
    const started = performance.now();
    let status = 500;
    let routeLabel = "(none)";
    try {
      const route = options.resolve(request.method, url.path);
      if (route.kind === "found") routeLabel = route.route ?? "(headless)";
      if (route.kind === "not-found") {
        throw new HttpError(404, `no route for ${request.method} ${url.path}`);
      }
      if (route.kind === "method-not-allowed") {
        throw new HttpError(405, `${request.method} is not allowed on ${url.path}`, {
          allow: route.allowed.join(", "),
        });
      }
      const single = singleFn(route.handler);
      const fast = single && !route.stream && !route.seedStateFromHeader;
      // A function whose module never reads the request is sent none of its headers: they are
      // not even collected, unless the sat picked for it turns out to read them after all.
      const headers = fast && !options.sats.readsRequest(fnKey(single))
        ? NO_HEADERS
        : requestHeaders(request);
      if (route.stream) {
        if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
          throw new HttpError(426, `${url.path} is a stream: connect with a WebSocket`, {
            upgrade: "websocket",
          });
        }
        const { socket, response } = Deno.upgradeWebSocket(request);
        serveStream(socket, (message) =>
          runSteps(route.handler, (fn, state) =>
            invoke(fnKey(fn), {
              fn: fnKey(fn),
              method: request.method,
              url: url.path + url.query,
              requestId: `${requestId}-${newRequestId()}`,
              headers,
              params: route.params,
              ...(state.size > 0 ? { state: encodeState(state) } : {}),
            }, message)));
        status = 101;
        return response;
      }
      if (fast) {
        // One fn whose output is the response: body and output stream through.
        const declared = request.headers.get("content-length") ?? undefined;
        const size = declared === undefined ? undefined : Number(declared);
        if (size !== undefined && size > maxBody) {
          throw new HttpError(413, `the request body exceeds the limit of ${maxBody} bytes`);
        }
        const body = size !== undefined && size <= STREAM_THRESHOLD
          ? new Uint8Array(await request.arrayBuffer())
          : request.body
          ? limited(request.body, maxBody)
          : new Uint8Array(0);
        const header: InvokeHeader = {
          fn: fnKey(single),
          method: request.method,
          url: url.path + url.query,
          requestId,
          headers,
          params: route.params,
          ...(body instanceof Uint8Array || size === undefined ? {} : { size }),
        };
        const outcome = await streamInvoke(
          header.fn,
          header,
          body,
          () => request.signal,
          () => requestHeaders(request),
        );
        if (!outcome.ok) {
          const code = outcome.code >= 200 && outcome.code <= 599 ? outcome.code : 500;
          status = code;
          log.info("function error", { requestId, code: outcome.code });
          return errorResponse(code, outcome.message, requestId);
        }
        const response = okResponse(outcome.output as BodyInit, outcome.headers, requestId);
        status = 200;
        return response;
      }
      const body = await readBody(request, maxBody);
      const initial = route.seedStateFromHeader ? stateFromHeader(request) : undefined;
      const outcome = await runSteps(route.handler, (fn, state) => {
        const header: InvokeHeader = {
          fn: fnKey(fn),
          method: request.method,
          url: url.path + url.query,
          requestId,
          headers,
          params: route.params,
          ...(state.size > 0 ? { state: encodeState(state) } : {}),
        };
        return invoke(header.fn, header, body, () => request.signal);
      }, initial);
      if (!outcome.ok) {
        const code = outcome.code >= 200 && outcome.code <= 599 ? outcome.code : 500;
        status = code;
        log.info("function error", { requestId, code: outcome.code });
        return errorResponse(code, outcome.message, requestId);
      }
      const response = okResponse(
        outcome.body as Uint8Array<ArrayBuffer>,
        outcome.headers,
        requestId,
      );
      status = 200;
      return response;
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        return errorResponse(error.status, error.message, requestId, error.headers);
      }
      if (error instanceof InvocationFailure) {
        status = error.status;
        return errorResponse(error.status, error.message, requestId);
      }
      log.error("request failed", { requestId, error: (error as Error).message });
      return errorResponse(500, "internal error in the proxy", requestId);
    } finally {
      options.metrics?.request(
        routeLabel,
        request.method,
        status,
        (performance.now() - started) / 1000,
      );
      if (log.debugEnabled) {
        log.debug("request", {
          requestId,
          method: request.method,
          path: url.path,
          status,
          ms: Math.round((performance.now() - started) * 100) / 100,
        });
      }
    }
  };
}
