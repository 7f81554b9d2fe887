/**
 * The request fields a runnable reads with `env.request_get_field`, as Suborbital's request
 * capability defines them (appspec `capabilities/request.go`).
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

function bodyField(body: Uint8Array, key: string): FieldResult {
  if (body.length === 0) return { value: EMPTY };
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return { error: "request body is not JSON" };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { error: "request body is not a JSON object" };
  }
  const value = own(parsed as Record<string, unknown>, key);
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
