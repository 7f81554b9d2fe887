/**
 * `env.fetch_url`: the wire form of a job's fetch, from its worker to the pool on the main thread
 * (carried by the channel's host call, _job_channel.ts: the worker blocks in `Atomics.wait` while
 * the pool runs the asynchronous `fetch` and writes the answer), the policy that decides which
 * hosts a runnable may reach, and the fetch itself.
 *
 * Suborbital semantics (reactr `api/http.go`): the method is a number (GET 0, HEAD 1, OPTIONS 2,
 * POST 3, PUT 4, PATCH 5, DELETE 6); request headers ride in the URL as
 * `url::Name:Value::Name2:Value2`; the response body is the call's result; a non-2xx response
 * is an error `"<status>: <body>"`.
 *
 * Departure from Atmo, which let a runnable reach anything: deny by default. A host must match an
 * entry of `allowedHosts` (`example.com` any port, `example.com:8443`, `*.example.com` its
 * subdomains, `*` any host), and a loopback, private, link-local or otherwise non-public address
 * (or a `localhost` name) is refused unless an exact entry names it: `*` and `*.x` never reach
 * one. Only http and https. Redirects are followed by hand (at most {@linkcode MAX_REDIRECTS}),
 * each hop checked again. Names are not resolved here: a public name whose DNS answers a private
 * address is not caught.
 *
 * @module
 */

import { MAX_CALL_BYTES } from "./_job_channel.ts";

/** The first byte of a fetch call (the cache's calls use 1 and 2: _cache_call.ts). */
const OP_FETCH = 3;
const REPLY_VALUE = 0;
const REPLY_ERROR = 1;
/** Bytes of a call's head: op, method, u32 URL length. */
const CALL_HEAD = 6;

/** Methods by their number in Suborbital's ABI. */
export const FETCH_METHODS: readonly string[] = [
  "GET",
  "HEAD",
  "OPTIONS",
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
];
/** Most bytes of a response body: what one host-call reply holds (its status byte aside). */
export const MAX_FETCH_BYTES = MAX_CALL_BYTES - 1;
/** A response body's limit unless told otherwise. */
export const DEFAULT_FETCH_MAX_BYTES = MAX_FETCH_BYTES;
/** A fetch's time limit unless told otherwise: 10 s (never beyond the job's own). */
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;
/** Longest `fetchTimeoutMs` allowed: a worker waits at most this (and a margin) for a reply. */
export const MAX_FETCH_TIMEOUT_MS = 60_000;
/** Most redirects followed. */
export const MAX_REDIRECTS = 5;
/** Most bytes of a non-2xx body quoted in the error message. */
const MAX_ERROR_BODY = 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Who a runnable may fetch from, and the bounds of a fetch. */
export interface FetchPolicy {
  readonly allowedHosts: readonly string[];
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

/**
 * A checked, frozen policy from the options.
 *
 * @throws {TypeError} `allowedHosts` is not an array of host names
 * @throws {RangeError} `fetchTimeoutMs` or `fetchMaxBytes` is out of range
 */
export function fetchPolicy(
  options: { allowedHosts?: readonly string[]; fetchTimeoutMs?: number; fetchMaxBytes?: number },
  label: string,
): FetchPolicy {
  const hosts = options.allowedHosts ?? [];
  if (!Array.isArray(hosts)) throw new TypeError(`${label}allowedHosts must be an array of hosts`);
  const allowedHosts = hosts.map((entry: unknown) => {
    if (
      typeof entry !== "string" ||
      !/^(\*|(\*\.)?[a-z0-9.\-]+(:\d+)?|\[[0-9a-f:.]+\](:\d+)?)$/i.test(entry)
    ) {
      throw new TypeError(
        `${label}allowedHosts: ${JSON.stringify(entry)} is not a host, "host:port", ` +
          `"*.domain" or "*"`,
      );
    }
    return entry.toLowerCase();
  });
  const timeoutMs = options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_FETCH_TIMEOUT_MS) {
    throw new RangeError(
      `${label}fetchTimeoutMs must be a positive number of at most ${MAX_FETCH_TIMEOUT_MS}, ` +
        `got ${timeoutMs}`,
    );
  }
  const maxBytes = options.fetchMaxBytes ?? DEFAULT_FETCH_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0 || maxBytes > MAX_FETCH_BYTES) {
    throw new RangeError(
      `${label}fetchMaxBytes must be an integer from 0 to ${MAX_FETCH_BYTES}, got ${maxBytes}`,
    );
  }
  return Object.freeze({ allowedHosts: Object.freeze(allowedHosts), timeoutMs, maxBytes });
}

/**
 * A fetch call as a worker sends it: u8 OP_FETCH, u8 method, u32 length and the UTF-8 URL (with
 * its `::Name:Value` headers), then the body (the rest). A reply: u8 status (VALUE or ERROR) and
 * the body or the UTF-8 error message (the rest). Little-endian.
 */
export function encodeFetchCall(method: number, url: Uint8Array, body: Uint8Array): Uint8Array {
  const call = new Uint8Array(CALL_HEAD + url.length + body.length);
  call[0] = OP_FETCH;
  call[1] = method;
  new DataView(call.buffer).setUint32(2, url.length, true);
  call.set(url, CALL_HEAD);
  call.set(body, CALL_HEAD + url.length);
  return call;
}

/** Whether a host call is a fetch. */
export function isFetchCall(call: Uint8Array): boolean {
  return call[0] === OP_FETCH;
}

/** The body or error message of a reply of {@linkcode serveFetchCall}. */
export function decodeFetchReply(reply: Uint8Array): { value: Uint8Array } | { error: string } {
  if (reply[0] === REPLY_VALUE) return { value: reply.slice(1) };
  return { error: decoder.decode(reply.subarray(1)) };
}

/**
 * Runs a fetch call under `policy`; never rejects: every failure is an error reply.
 *
 * @param call a call of {@linkcode encodeFetchCall} (copied before the first await)
 * @param policy the runnable's hosts and bounds
 * @param timeoutMs the time left for it (at most the policy's)
 * @param signal ends it early (the job was stopped)
 * @returns the reply for the worker
 */
export async function serveFetchCall(
  call: Uint8Array,
  policy: FetchPolicy,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const view = new DataView(call.buffer, call.byteOffset, call.byteLength);
  const methodNumber = call[1]!;
  const urlLength = view.getUint32(2, true);
  const target = decoder.decode(call.subarray(CALL_HEAD, CALL_HEAD + urlLength));
  const body = call.slice(CALL_HEAD + urlLength);
  let method = FETCH_METHODS[methodNumber];
  if (method === undefined) {
    return errorReply(`unknown method ${methodNumber}; use 0 to 6 (GET, HEAD, ..., DELETE)`);
  }
  const { url: text, headers } = splitHeaders(target);
  if (typeof headers === "string") return errorReply(headers);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return errorReply(`${JSON.stringify(text)} is not an absolute URL`);
  }
  if (timeoutMs <= 0) return errorReply("the job has no time left for a fetch");
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  let sendBody: Uint8Array | undefined = method === "GET" || method === "HEAD" ? undefined : body;
  let sendHeaders = headers;
  try {
    for (let hop = 0;; hop++) {
      const refused = refusal(url, policy.allowedHosts);
      if (refused) return errorReply(refused);
      const response = await fetch(url, {
        method,
        headers: sendHeaders,
        body: sendBody as Uint8Array<ArrayBuffer> | undefined,
        redirect: "manual",
        signal: deadline,
      });
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        if (hop >= MAX_REDIRECTS) return errorReply(`more than ${MAX_REDIRECTS} redirects`);
        const next = new URL(location, url);
        // RFC 9110 §15.4: 303 (and, as browsers do, 301/302 after POST) turn into a GET.
        if (response.status === 303 || (response.status <= 302 && method === "POST")) {
          if (method !== "HEAD") method = "GET";
          sendBody = undefined;
        }
        // Headers (credentials maybe) go to the origin the runnable named only.
        if (next.origin !== url.origin) sendHeaders = new Headers();
        url = next;
        continue;
      }
      const ok = response.status >= 200 && response.status < 300;
      const limit = ok ? policy.maxBytes : MAX_ERROR_BODY;
      const read = await readBounded(response, limit);
      if (ok) {
        if (read.over) {
          return errorReply(
            `the response of ${url.host} is larger than the limit of ${policy.maxBytes} bytes`,
          );
        }
        const reply = new Uint8Array(1 + read.bytes.length);
        reply[0] = REPLY_VALUE;
        reply.set(read.bytes, 1);
        return reply;
      }
      return errorReply(
        `${response.status}: ${decoder.decode(read.bytes)}${read.over ? "..." : ""}`,
      );
    }
  } catch (error) {
    if (signal.aborted) return errorReply("the job was stopped during the fetch");
    if (deadline.aborted) {
      return errorReply(`fetching ${url.host} took longer than ${Math.round(timeoutMs)} ms`);
    }
    const reason = error instanceof Error ? error.message : String(error);
    return errorReply(`fetching ${url.origin} failed: ${reason}`);
  }
}

/**
 * Why the policy refuses `url`, or undefined if it allows it.
 *
 * @param url the URL to fetch
 * @param allowedHosts entries as {@linkcode fetchPolicy} checked them
 */
export function refusal(url: URL, allowedHosts: readonly string[]): string | undefined {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `only http and https URLs can be fetched, not ${JSON.stringify(url.protocol)}`;
  }
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  let exact = false;
  let wildcard = false;
  for (const entry of allowedHosts) {
    if (entry === host || entry === `${host}:${port}`) exact = true;
    else if (entry === "*") wildcard = true;
    else if (entry.startsWith("*.")) {
      const [domain, entryPort] = entry.slice(1).split(/:(?=\d+$)/) as [string, string?];
      if (host.endsWith(domain) && (entryPort === undefined || entryPort === port)) {
        wildcard = true;
      }
    }
  }
  if (!exact && !wildcard) {
    return `host ${JSON.stringify(url.host)} is not in allowedHosts; add ` +
      `${JSON.stringify(url.host)} to the runnable's allowedHosts to allow it`;
  }
  if (!exact && !isPublic(host)) {
    return `host ${JSON.stringify(url.host)} is a loopback or private address; only an ` +
      `exact allowedHosts entry (${JSON.stringify(url.host)}) allows it`;
  }
  return undefined;
}

/** Whether a URL's hostname (IPv6 in brackets) names a public address. */
function isPublic(host: string): boolean {
  if (/(^|\.)localhost\.?$/.test(host)) return false;
  if (host.startsWith("[")) return isPublicV6(host.slice(1, -1));
  const v4 = host.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  return v4 ? isPublicV4(v4.slice(1).map(Number) as number[]) : true;
}

function isPublicV4([a, b]: number[]): boolean {
  return !(
    a === 0 || a === 10 || a === 127 || a! >= 224 || // this network, private, loopback, multicast
    (a === 100 && b! >= 64 && b! < 128) || // shared address space (RFC 6598)
    (a === 169 && b === 254) || // link-local
    (a === 172 && b! >= 16 && b! < 32) ||
    (a === 192 && b === 168) ||
    (a === 198 && (b === 18 || b === 19)) // benchmarking (RFC 2544)
  );
}

function isPublicV6(address: string): boolean {
  // The URL parser writes IPv6 in its shortest form, an embedded IPv4 address in hex.
  const mapped = address.match(/^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/);
  if (mapped) {
    const high = parseInt(mapped[1]!, 16);
    const low = parseInt(mapped[2]!, 16);
    return isPublicV4([high >> 8, high & 255, low >> 8, low & 255]);
  }
  if (address === "::" || address === "::1") return false;
  const first = parseInt(address.split(":")[0] || "0", 16);
  return !(
    (first & 0xfe00) === 0xfc00 || // unique local fc00::/7
    (first & 0xffc0) === 0xfe80 || // link-local fe80::/10
    (first & 0xff00) === 0xff00 // multicast
  );
}

/** The URL and the headers that ride after it (`url::Name:Value::...`), or what is wrong. */
function splitHeaders(target: string): { url: string; headers: Headers | string } {
  // An IPv6 host holds "::" too: look past it.
  const bracket = target.indexOf("]");
  const from = bracket !== -1 && bracket < target.indexOf("/", target.indexOf("//") + 2)
    ? bracket
    : 0;
  const at = target.indexOf("::", from);
  if (at === -1) return { url: target, headers: new Headers() };
  const headers = new Headers();
  for (const part of target.slice(at + 2).split("::")) {
    const colon = part.indexOf(":");
    if (colon <= 0) {
      return {
        url: target,
        headers: `header ${JSON.stringify(part)} in the URL is not "Name:Value"`,
      };
    }
    try {
      headers.append(part.slice(0, colon).trim(), part.slice(colon + 1).trim());
    } catch {
      return { url: target, headers: `header ${JSON.stringify(part)} in the URL is not valid` };
    }
  }
  return { url: target.slice(0, at), headers };
}

/** The body, up to `limit` bytes; `over` if there was more (the rest is not read). */
async function readBounded(
  response: Response,
  limit: number,
): Promise<{ bytes: Uint8Array; over: boolean }> {
  if (!response.body) return { bytes: new Uint8Array(0), over: false };
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > limit) {
    await response.body.cancel();
    return { bytes: new Uint8Array(0), over: true };
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const room = limit - size;
    if (value.length > room) {
      chunks.push(value.subarray(0, room));
      size = limit;
      await reader.cancel();
      return { bytes: concat(chunks, size), over: true };
    }
    chunks.push(value);
    size += value.length;
  }
  return { bytes: concat(chunks, size), over: false };
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

function errorReply(message: string): Uint8Array {
  const bytes = encoder.encode(message);
  const reply = new Uint8Array(1 + bytes.length);
  reply[0] = REPLY_ERROR;
  reply.set(bytes, 1);
  return reply;
}
