/**
 * Resource patterns (`/users/:id/files/*path`), shared by the validator and the route table.
 *
 * A resource is `/` followed by segments separated by `/`:
 * - a static segment matches itself (it is percent-decoded first, as request paths are);
 * - `:name` matches exactly one non-empty segment;
 * - `*name`, last only, matches the rest of the path, at least `/`.
 * A parameter is a whole segment (`/user_:name` is refused: write `/user/:name`). Only the last
 * segment may be empty (`/users/` is a route of its own, distinct from `/users`).
 *
 * @module
 */

/** One segment of a resource. */
export type ResourceSegment =
  | { readonly kind: "static"; readonly value: string }
  | { readonly kind: "param"; readonly name: string }
  | { readonly kind: "catch-all"; readonly name: string };

const PARAM_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * Splits a resource into segments, or says what is wrong with it (a message without the
 * path prefix, quoting the resource).
 */
export function parseResource(
  resource: string,
): { readonly segments: readonly ResourceSegment[] } | { readonly error: string } {
  const quoted = JSON.stringify(resource);
  if (!resource.startsWith("/")) {
    return {
      error: `${quoted} must start with "/" (did you mean ${JSON.stringify("/" + resource)}?)`,
    };
  }
  if (/[?#]/.test(resource)) {
    return { error: `${quoted} must be a path only, without "?" or "#"` };
  }
  if (/\s/.test(resource)) {
    return { error: `${quoted} contains white space; percent-encode it (%20)` };
  }
  const raw = resource.slice(1).split("/");
  const segments: ResourceSegment[] = [];
  const names = new Set<string>();
  for (let i = 0; i < raw.length; i++) {
    const part = raw[i]!;
    const last = i === raw.length - 1;
    if (part === "" && !last) {
      return { error: `${quoted} has an empty segment ("//"); remove the extra "/"` };
    }
    const sigil = part[0];
    if (sigil === ":" || sigil === "*") {
      const name = part.slice(1);
      const what = sigil === ":" ? "parameter" : "catch-all";
      if (name === "") {
        return { error: `${quoted} has a ${what} without a name (like "${sigil}name")` };
      }
      if (!PARAM_NAME.test(name)) {
        return {
          error: `${quoted}: ${JSON.stringify(part)} is not a ${what} name ` +
            `(letters, digits, "_", "-"; a ${what} is a whole segment)`,
        };
      }
      if (names.has(name)) {
        return {
          error: `${quoted} uses the name "${name}" twice; give each parameter its own name`,
        };
      }
      names.add(name);
      if (sigil === "*" && !last) {
        return { error: `${quoted}: the catch-all "${part}" must be the last segment` };
      }
      segments.push(sigil === ":" ? { kind: "param", name } : { kind: "catch-all", name });
      continue;
    }
    if (part.includes(":") || part.includes("*")) {
      return {
        error: `${quoted}: a parameter must be a whole segment ` +
          `(write ${JSON.stringify(part.replace(/[^/]*?([:*])/, "$1"))} as a segment of its own)`,
      };
    }
    if (!part.isWellFormed()) {
      return {
        error: `${quoted} contains an unpaired UTF-16 surrogate in ${
          JSON.stringify(part)
        }; a path is text: remove the stray character`,
      };
    }
    let value: string;
    try {
      value = decodeURIComponent(part);
    } catch {
      return {
        error: `${quoted} has malformed percent-encoding in "${part}"; write "%" itself as "%25"`,
      };
    }
    segments.push({ kind: "static", value });
  }
  return { segments };
}

/**
 * A key equal for two resources exactly when they match the same paths: parameter names are
 * left out (`/users/:id` and `/users/:name` collide).
 */
export function routeShape(segments: readonly ResourceSegment[]): string {
  return segments.map((s) =>
    s.kind === "static" ? "/" + encodeURIComponent(s.value) : s.kind === "param" ? "/:" : "/*"
  ).join("");
}
