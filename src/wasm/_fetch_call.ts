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
 * Authentication, as Atmo's `authentication.domains`: `authHeaders` maps a host (or `host:port`)
 * to the `Authorization` value sent to it (`"<headerType> <value>"`), on every hop to that host,
 * replacing one the runnable set. graphql_query (_graphql_call.ts) fetches through the same
 * {@linkcode policyFetch}.
 *
 * @module
 */

import { concatBytes } from "../wire/mod.ts";
import { errorReply, valueReply } from "./_call_reply.ts";
import { MAX_CALL_BYTES } from "./_job_channel.ts";

/**
 * The first byte of a fetch call. Other calls: the cache's 1 and 2 (_cache_call.ts), graphql's 4
 * (_graphql_call.ts), the database's 5 (_database_call.ts), static files' 6
 * (_static_file_call.ts).
 */
const OP_FETCH = 3;
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
  /** The `Authorization` header value to send to a host (`host` or `host:port`), by host. */
  readonly authHeaders: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

/**
 * A checked, frozen policy from the options.
 *
 * @throws {TypeError} `allowedHosts` is not an array of host names, or `authHeaders` not a
 *   record of header values by host
 * @throws {RangeError} `fetchTimeoutMs` or `fetchMaxBytes` is out of range
 */
export function fetchPolicy(
  options: {
    allowedHosts?: readonly string[];
    authHeaders?: Readonly<Record<string, string>>;
    fetchTimeoutMs?: number;
    fetchMaxBytes?: number;
  },
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
  const authHeaders = checkAuthHeaders(options.authHeaders ?? {}, label);
  return Object.freeze({
    allowedHosts: Object.freeze(allowedHosts),
    authHeaders,
    timeoutMs,
    maxBytes,
  });
}

/** A frozen copy of an `authHeaders` option, hosts lower-cased; values never in a message. */
function checkAuthHeaders(
  authHeaders: Readonly<Record<string, string>>,
  label: string,
): Readonly<Record<string, string>> {
  if (typeof authHeaders !== "object" || authHeaders === null || Array.isArray(authHeaders)) {
    throw new TypeError(`${label}authHeaders must be an object of header values by host`);
  }
  const copy: Record<string, string> = {};
  for (const [host, value] of Object.entries(authHeaders)) {
    if (!/^([a-z0-9.\-]+|\[[0-9a-f:.]+\])(:\d+)?$/i.test(host)) {
      throw new TypeError(
        `${label}authHeaders: ${JSON.stringify(host)} is not a host or "host:port"`,
      );
    }
    // RFC 9110 §5.5: a field value is visible characters, spaces and tabs.
    if (typeof value !== "string" || !/^[\t\x20-\x7e\x80-\xff]*$/.test(value)) {
      throw new TypeError(
        `${label}authHeaders: the value for ${JSON.stringify(host)} must be a string of ` +
          'visible characters (such as "Bearer <token>")',
      );
    }
    copy[host.toLowerCase()] = value;
  }
  return Object.freeze(copy);
}

/**
 * A fetch call as a worker sends it: u8 OP_FETCH, u8 method, u32 length and the UTF-8 URL (with
 * its `::Name:Value` headers), then the body (the rest). The reply: _call_reply.ts.
 * Little-endian.
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
  const method = FETCH_METHODS[methodNumber];
  if (method === undefined) {
    return errorReply(`unknown method ${methodNumber}; use 0 to 6 (GET, HEAD, ..., DELETE)`);
  }
  const { url, headers } = splitHeaders(target);
  if (typeof headers === "string") return errorReply(headers);
  const response = await policyFetch(url, { method, headers, body }, policy, timeoutMs, signal);
  if ("error" in response) return errorReply(response.error);
  if (response.ok) return valueReply(response.bytes);
  return errorReply(`${response.status}: ${decoder.decode(response.bytes)}`);
}

/** What {@linkcode policyFetch} answers. */
export type PolicyResponse =
  | { ok: true; status: number; bytes: Uint8Array }
  | { ok: false; status: number; bytes: Uint8Array }
  | { error: string };

/**
 * One fetch under `policy`, for fetch_url and graphql_query: each hop (redirects are followed by
 * hand) checked against `allowedHosts`, with the `authHeaders` entry of its host set. A 2xx body
 * is read up to the policy's `maxBytes` (more is an error), another one up to 1 KiB (for the
 * message, "..." marking a cut). Never rejects.
 *
 * @param text the absolute URL
 * @param request method, headers and body (none sent with GET or HEAD)
 * @param policy the runnable's hosts, authentication and bounds
 * @param timeoutMs the time left for it
 * @param signal ends it early (the job was stopped)
 */
export async function policyFetch(
  text: string,
  request: { method: string; headers: Headers; body: Uint8Array },
  policy: FetchPolicy,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<PolicyResponse> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { error: `${JSON.stringify(text)} is not an absolute URL` };
  }
  if (timeoutMs <= 0) return { error: "the job has no time left for a fetch" };
  const deadline = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  let method = request.method;
  let sendBody: Uint8Array | undefined = method === "GET" || method === "HEAD"
    ? undefined
    : request.body;
  let sendHeaders = request.headers;
  try {
    for (let hop = 0;; hop++) {
      const refused = refusal(url, policy.allowedHosts);
      if (refused) return { error: refused };
      const headers = new Headers(sendHeaders);
      const auth = authHeaderFor(url, policy.authHeaders);
      // The operator's credentials for this host win over a header the runnable set.
      if (auth !== undefined) headers.set("authorization", auth);
      const response = await fetch(url, {
        method,
        headers,
        body: sendBody as Uint8Array<ArrayBuffer> | undefined,
        redirect: "manual",
        signal: deadline,
      });
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        if (hop >= MAX_REDIRECTS) return { error: `more than ${MAX_REDIRECTS} redirects` };
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
      const read = await readBounded(response, ok ? policy.maxBytes : MAX_ERROR_BODY);
      if (!ok) {
        const bytes = read.over ? concatBytes([read.bytes, encoder.encode("...")]) : read.bytes;
        return { ok: false, status: response.status, bytes };
      }
      if (read.over) {
        return {
          error: `the response of ${url.host} is larger than the limit of ${policy.maxBytes} bytes`,
        };
      }
      return { ok: true, status: response.status, bytes: read.bytes };
    }
  } catch (error) {
    if (signal.aborted) return { error: "the job was stopped during the fetch" };
    if (deadline.aborted) {
      return { error: `fetching ${url.host} took longer than ${Math.round(timeoutMs)} ms` };
    }
    const reason = error instanceof Error ? error.message : String(error);
    return { error: `fetching ${url.origin} failed: ${reason}` };
  }
}

/** The `Authorization` value configured for a URL's host: `host:port` first, then `host`. */
function authHeaderFor(
  url: URL,
  authHeaders: Readonly<Record<string, string>>,
): string | undefined {
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  for (const key of [`${host}:${port}`, host]) {
    if (Object.hasOwn(authHeaders, key)) return authHeaders[key];
  }
  return undefined;
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
    return `host ${JSON.stringify(url.host)} is not in allowedHosts; allow it in ` +
      "Directive.yaml (capabilities.http.rules.allowedDomains) or with the sat's " +
      `--allow-hosts ${JSON.stringify(url.host)}`;
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
      return { bytes: concatBytes(chunks), over: true };
    }
    chunks.push(value);
    size += value.length;
  }
  return { bytes: concatBytes(chunks), over: false };
}
