/**
 * What the invocation protocol's codec costs per request: the proxy encodes an INVOKE and
 * decodes a RESULT, the sat decodes the INVOKE and encodes the RESULT, for a request as `wrk`
 * sends it in `deno task bench:e2e` (two headers, a 9-byte body).
 *
 * Group "UTF-8 of a 250-byte JSON header": the strict decoding both ends use
 * (`decodeUtf8Strict`) against Deno's fatal `TextDecoder`, the baseline, which allocates a
 * zeroed buffer per call.
 *
 * Run: `deno bench --allow-read bench/invocation_codec_bench.ts` (part of `deno task bench`).
 *
 * @module
 */

import {
  decodeInvocationMessage,
  encodeWithBody,
  INVOKE,
  type InvokeHeader,
  RESULT,
} from "../src/invocation/invocation_codec.ts";
import { decodeUtf8Strict } from "../src/wire/mod.ts";

const encoder = new TextEncoder();
const HEADER: InvokeHeader = {
  fn: "helloworld-rs",
  method: "POST",
  url: "/hello",
  requestId: "5f3a9c1e-2bk",
  headers: { host: "127.0.0.1:8080", "content-length": "9" },
  params: {},
};
const BODY = encoder.encode("my friend");
const OUTPUT = encoder.encode("hello, my friend");
const INVOKE_MESSAGE = encodeWithBody(INVOKE, 7, HEADER, BODY)[0]!;
const RESULT_MESSAGE = encodeWithBody(RESULT, 7, { ok: true }, OUTPUT)[0]!;
const JSON_BYTES = encoder.encode(
  JSON.stringify({ ...HEADER, url: "/hello?name=" + "x".repeat(95) }),
);
const fatal = new TextDecoder("utf-8", { fatal: true });

const UTF8 = "UTF-8 of a 250-byte JSON header";

Deno.bench("encode INVOKE (proxy)", { group: "per request" }, () => {
  encodeWithBody(INVOKE, 7, HEADER, BODY);
});
Deno.bench("decode INVOKE (sat)", { group: "per request" }, () => {
  decodeInvocationMessage(INVOKE_MESSAGE);
});
Deno.bench("encode RESULT (sat)", { group: "per request" }, () => {
  encodeWithBody(RESULT, 7, { ok: true }, OUTPUT);
});
Deno.bench("decode RESULT (proxy)", { group: "per request" }, () => {
  decodeInvocationMessage(RESULT_MESSAGE);
});

Deno.bench("fatal TextDecoder", { group: UTF8, baseline: true }, () => {
  fatal.decode(JSON_BYTES);
});
Deno.bench("decodeUtf8Strict", { group: UTF8 }, () => {
  decodeUtf8Strict(JSON_BYTES);
});
