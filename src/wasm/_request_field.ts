/**
 * The request fields a runnable reads with `env.request_get_field` and changes with
 * `env.request_set_field`, as Suborbital's request capability defines them (appspec
 * `capabilities/request.go`, reactr `rcap/requesthandler.go`).
 *
 * @module
 */

import type { RequestInfo } from "./runnable.ts";

/** `fieldType` values of `request_get_field`. */
export const FIELD_META = 0;
/** A string field of a JSON object body. */
export const FIELD_BODY = 1;
/** A header; names are case-insensitive. */
export const FIELD_HEADER = 2;
/** A URL parameter of the route. */
export const FIELD_PARAMS = 3;
/** A value an earlier step stored. */
export const FIELD_STATE = 4;
/** A query parameter of the URL. */
export const FIELD_QUERY = 5;

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/** A field's bytes, or why it cannot be read. A missing key is an empty value, not an error. */
export type FieldResult = { value: Uint8Array } | { error: string };

/**
 * Reads one field of a request.
 *
 * @param request the job's request
 * @param fieldType one of the `FIELD_*` constants
 * @param key the field's name
 * @returns the value's bytes, or an error message for the module
 */
export function requestField(request: RequestInfo, fieldType: number, key: string): FieldResult {
  switch (fieldType) {
    case FIELD_META:
      switch (key) {
        case "method":
          return text(request.method);
        case "url":
          return text(request.url);
        case "id":
          return text(request.id);
        case "body":
          return { value: request.body };
        default:
          return { value: EMPTY };
      }
    case FIELD_BODY:
      return bodyField(request.body, key);
    case FIELD_HEADER: {
      const name = key.toLowerCase();
      for (const [header, value] of Object.entries(request.headers)) {
        if (header.toLowerCase() === name) return text(value);
      }
      return { value: EMPTY };
    }
    case FIELD_PARAMS:
      return text(own(request.params, key));
    case FIELD_STATE:
      return { value: own(request.state, key) ?? EMPTY };
    case FIELD_QUERY: {
      let url: URL;
      try {
        url = new URL(request.url, "http://localhost");
      } catch {
        return { error: `request URL "${request.url}" cannot be parsed` };
      }
      return text(url.searchParams.get(key) ?? undefined);
    }
    default:
      return { error: `invalid request field type ${fieldType}` };
  }
}

/**
 * Changes one field of the job's request, as Reactr's `SetField`: later `request_get_field` calls
 * of the same job read the new value; nothing leaves the job (the next step of a handler gets the
 * request as it came, Reactr's wasm runner returns only the response headers).
 *
 * - meta: `method`, `url` and `body` are replaced; `id` stays as it is (Reactr ignores it).
 * - body: the string field `key` of the JSON object body is set (an empty body is `{}`).
 * - header: set under the lower-cased name (request_get_field reads names case-insensitively).
 * - params, state: set (state as the value's UTF-8 bytes).
 * - query (5) and other types: an error, as in Reactr (set `url` instead).
 *
 * @param request the job's request (changed in place)
 * @param fieldType one of the `FIELD_*` constants
 * @param key the field's name
 * @param value its new value
 * @returns undefined, or why the field cannot be set
 */
export function setRequestField(
  request: RequestInfo,
  fieldType: number,
  key: string,
  value: string,
): string | undefined {
  switch (fieldType) {
    case FIELD_META:
      switch (key) {
        case "method":
          request.method = value;
          return undefined;
        case "url":
          request.url = value;
          return undefined;
        case "id":
          return undefined;
        case "body":
          request.body = encoder.encode(value);
          return undefined;
        default:
          return `invalid meta field ${JSON.stringify(key)}; use method, url, id or body`;
      }
    case FIELD_BODY: {
      const parsed = request.body.length === 0 ? {} : bodyObject(request.body);
      if (typeof parsed === "string") return parsed;
      // A property of its own, even for names such as "__proto__".
      Object.defineProperty(parsed, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      request.body = encoder.encode(JSON.stringify(parsed));
      return undefined;
    }
    case FIELD_HEADER:
      // Copies: the request's records may be shared with the caller.
      request.headers = { ...request.headers, [key.toLowerCase()]: value };
      return undefined;
    case FIELD_PARAMS:
      request.params = { ...request.params, [key]: value };
      return undefined;
    case FIELD_STATE:
      request.state = { ...request.state, [key]: encoder.encode(value) };
      return undefined;
    case FIELD_QUERY:
      return "query parameters cannot be set; set the meta field url instead";
    default:
      return `invalid request field type ${fieldType}`;
  }
}

/** The body as a JSON object, or why it is not one. */
function bodyObject(body: Uint8Array): Record<string, unknown> | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return "request body is not JSON";
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return "request body is not a JSON object";
  }
  return parsed as Record<string, unknown>;
}

function bodyField(body: Uint8Array, key: string): FieldResult {
  if (body.length === 0) return { value: EMPTY };
  const parsed = bodyObject(body);
  if (typeof parsed === "string") return { error: parsed };
  const value = own(parsed, key);
  if (value === undefined) return { value: EMPTY };
  if (typeof value !== "string") return { error: `request body field "${key}" is not a string` };
  return text(value);
}

/** An own property only: a key such as "__proto__" or "toString" is just missing. */
function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function text(value: string | undefined): FieldResult {
  return { value: value === undefined ? EMPTY : encoder.encode(value) };
}
