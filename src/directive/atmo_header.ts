/**
 * Atmo's request headers that carry a map of strings: `X-Atmo-State` (initial request state)
 * and `X-Atmo-Params` (URL parameters), as its headless mode used them.
 *
 * @module
 */

/**
 * The JSON object of string values in header `name`, or undefined when the header is absent.
 *
 * @throws RangeError with a message for the client when the value is not such an object
 * @example
 * ```ts
 * atmoStringMap(request.headers, "X-Atmo-State"); // { name: "value" }
 * ```
 */
export function atmoStringMap(headers: Headers, name: string): Record<string, string> | undefined {
  const text = headers.get(name);
  if (text === null) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RangeError(`${name} is not valid JSON: send an object of string values`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RangeError(`${name} must be a JSON object of string values`);
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string") {
      throw new RangeError(`${name}: the value of "${key}" must be a string`);
    }
  }
  return value as Record<string, string>;
}
