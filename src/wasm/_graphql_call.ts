/**
 * `env.graphql_query`: the wire form of a job's GraphQL query, from its worker to the pool, and
 * the query itself (GraphQL over HTTP: a POST of `{"query", "variables"}` as JSON).
 *
 * Reactr semantics (`rcap/graphql.go`): the endpoint is reached through the same rules as
 * `fetch_url` (the runnable's `allowedHosts`, deny by default, and its `authHeaders`:
 * _fetch_call.ts); the call's result is the response's `data` as JSON; GraphQL `errors` make the
 * call fail with their messages; a non-2xx status fails it with `"<status>: <body>"`. The
 * variables are those the job added with `add_ffi_var`, in order (a repeated name: the last one),
 * which the call uses up.
 *
 * @module
 */

import { type CallOutcome, errorReply, valueReply } from "./_call_reply.ts";
import { type FetchPolicy, policyFetch } from "./_fetch_call.ts";
import type { QueryVariable } from "./host_services.ts";

const OP_GRAPHQL = 4;
/** Most GraphQL error messages quoted in the call's error. */
const MAX_QUOTED_ERRORS = 5;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface GraphqlCall {
  endpoint: string;
  query: string;
  variables: QueryVariable[];
}

/** A query as a worker sends it: u8 OP_GRAPHQL, then the UTF-8 JSON of {@linkcode GraphqlCall}. */
export function encodeGraphqlCall(
  endpoint: string,
  query: string,
  variables: readonly QueryVariable[],
): Uint8Array {
  const json = encoder.encode(JSON.stringify({ endpoint, query, variables }));
  const call = new Uint8Array(1 + json.length);
  call[0] = OP_GRAPHQL;
  call.set(json, 1);
  return call;
}

/** Whether a host call is a GraphQL query. */
export function isGraphqlCall(call: Uint8Array): boolean {
  return call[0] === OP_GRAPHQL;
}

/**
 * Runs a call of {@linkcode encodeGraphqlCall} under `policy`; never rejects.
 *
 * @param call the call (read before the first await)
 * @param policy the runnable's hosts, authentication and bounds
 * @param timeoutMs the time left for it
 * @param signal ends it early (the job was stopped)
 * @returns the reply for the worker: `data` as JSON, or an error message
 */
export async function serveGraphqlCall(
  call: Uint8Array,
  policy: FetchPolicy,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const { endpoint, query, variables } = JSON.parse(
    decoder.decode(call.subarray(1)),
  ) as GraphqlCall;
  const outcome = await runQuery(endpoint, query, variables, policy, timeoutMs, signal);
  return "error" in outcome ? errorReply(outcome.error) : valueReply(outcome.value);
}

async function runQuery(
  endpoint: string,
  query: string,
  variables: readonly QueryVariable[],
  policy: FetchPolicy,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<CallOutcome> {
  const values: Record<string, string> = {};
  for (const { name, value } of variables) values[name] = value;
  const body = encoder.encode(JSON.stringify({ query, variables: values }));
  const headers = new Headers({
    "content-type": "application/json",
    "accept": "application/graphql-response+json, application/json",
  });
  const response = await policyFetch(
    endpoint,
    { method: "POST", headers, body },
    policy,
    timeoutMs,
    signal,
  );
  if ("error" in response) return response;
  const text = decoder.decode(response.bytes);
  if (!response.ok) return { error: `${response.status}: ${text}` };
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    return { error: `the GraphQL endpoint ${endpoint} answered something other than JSON` };
  }
  if (typeof answer !== "object" || answer === null || Array.isArray(answer)) {
    return { error: `the GraphQL endpoint ${endpoint} answered JSON that is not an object` };
  }
  const { data, errors } = answer as { data?: unknown; errors?: unknown };
  if (Array.isArray(errors) && errors.length > 0) {
    const quoted = errors.slice(0, MAX_QUOTED_ERRORS).map(describeError).join("; ");
    const more = errors.length > MAX_QUOTED_ERRORS
      ? ` (and ${errors.length - MAX_QUOTED_ERRORS} more)`
      : "";
    return { error: `GraphQL error: ${quoted}${more}` };
  }
  if (data === undefined || data === null) {
    return { error: `the GraphQL endpoint ${endpoint} answered neither data nor errors` };
  }
  return { value: encoder.encode(JSON.stringify(data)) };
}

/** `message (path a.b.0)` of one GraphQL error (GraphQL spec §7.1.2). */
function describeError(error: unknown): string {
  if (typeof error !== "object" || error === null) return JSON.stringify(error);
  const { message, path } = error as { message?: unknown; path?: unknown };
  const text = typeof message === "string" ? message : JSON.stringify(error);
  return Array.isArray(path) && path.length > 0 ? `${text} (path ${path.join(".")})` : text;
}
