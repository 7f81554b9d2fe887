/**
 * A small JSON Schema (draft 2020-12) validator for tests: just the keywords
 * `schema/directive.schema.json` uses. A schema that uses any other keyword is refused
 * (TypeError), so a keyword this validator would silently ignore cannot creep into the schema.
 *
 * Supported: `type` (a name or a list), `properties`, `required`, `additionalProperties`
 * (boolean or schema), `propertyNames`, `items`, `enum`, `pattern`, `minLength`, `minItems`,
 * `minimum`, `maximum`, `oneOf`, `anyOf`, `not`, and `$ref` to a JSON pointer inside the root
 * (`#/$defs/name`); `$schema`, `$defs`, `title` and `description` are annotations. Boolean
 * schemas (`true`, `false`) are supported.
 *
 * @module
 */

/** A JSON Schema: an object of keywords, or a boolean. */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };

const KEYWORDS = new Set([
  "$schema",
  "$defs",
  "$ref",
  "title",
  "description",
  "type",
  "properties",
  "required",
  "additionalProperties",
  "propertyNames",
  "items",
  "enum",
  "pattern",
  "minLength",
  "minItems",
  "minimum",
  "maximum",
  "oneOf",
  "anyOf",
  "not",
]);

/**
 * Validates `value` against `schema` and returns every problem as `/json/pointer: message`
 * (empty when valid).
 *
 * @param schema the root schema (`$ref`s resolve against it)
 * @param value plain JSON-like data, e.g. what `yaml`'s `parse` returns
 * @returns the problems, in walk order
 * @throws TypeError when the schema uses an unsupported keyword or a `$ref` that does not resolve
 *
 * @example
 * ```ts
 * validateJsonSchema({ type: "object", required: ["a"] }, {}); // ['/: is missing "a"']
 * ```
 */
export function validateJsonSchema(schema: JsonSchema, value: unknown): string[] {
  const problems: string[] = [];
  check(schema, value, "", schema, problems);
  return problems;
}

/** The JSON type names `value` has (an integer is both `integer` and `number`). */
function typesOf(value: unknown): string[] {
  if (value === null) return ["null"];
  if (Array.isArray(value)) return ["array"];
  switch (typeof value) {
    case "string":
      return ["string"];
    case "boolean":
      return ["boolean"];
    case "number":
      return Number.isInteger(value) ? ["integer", "number"] : ["number"];
    case "object":
      return ["object"];
    default:
      return [typeof value];
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function resolve(root: JsonSchema, ref: string): JsonSchema {
  if (!ref.startsWith("#/")) throw new TypeError(`unsupported $ref ${JSON.stringify(ref)}`);
  let node: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (!isObject(node) || !(key in node)) {
      throw new TypeError(`$ref ${JSON.stringify(ref)} does not resolve`);
    }
    node = node[key];
  }
  if (typeof node !== "boolean" && !isObject(node)) {
    throw new TypeError(`$ref ${JSON.stringify(ref)} is not a schema`);
  }
  return node;
}

function check(
  schema: JsonSchema,
  value: unknown,
  at: string,
  root: JsonSchema,
  problems: string[],
): void {
  const where = at === "" ? "/" : at;
  if (schema === true) return;
  if (schema === false) {
    problems.push(`${where}: is not allowed here`);
    return;
  }
  for (const keyword of Object.keys(schema)) {
    if (!KEYWORDS.has(keyword)) throw new TypeError(`unsupported keyword "${keyword}" at ${where}`);
  }
  const s = schema as Record<string, unknown>;

  if (typeof s.$ref === "string") check(resolve(root, s.$ref), value, at, root, problems);

  if (s.type !== undefined) {
    const wanted = Array.isArray(s.type) ? s.type as string[] : [s.type as string];
    if (!typesOf(value).some((t) => wanted.includes(t))) {
      problems.push(`${where}: must be of type ${wanted.join(" or ")}, got ${typesOf(value)[0]}`);
      return;
    }
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => e === value)) {
    problems.push(
      `${where}: must be one of ${JSON.stringify(s.enum)}, got ${JSON.stringify(value)}`,
    );
  }
  if (typeof value === "string") {
    if (typeof s.pattern === "string" && !new RegExp(s.pattern, "u").test(value)) {
      problems.push(`${where}: ${JSON.stringify(value)} does not match ${s.pattern}`);
    }
    if (typeof s.minLength === "number" && [...value].length < s.minLength) {
      problems.push(`${where}: must have at least ${s.minLength} characters`);
    }
  }
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) {
      problems.push(`${where}: must be at least ${s.minimum}, got ${value}`);
    }
    if (typeof s.maximum === "number" && value > s.maximum) {
      problems.push(`${where}: must be at most ${s.maximum}, got ${value}`);
    }
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems) {
      problems.push(`${where}: must have at least ${s.minItems} items, got ${value.length}`);
    }
    if (s.items !== undefined) {
      value.forEach((item, i) => check(s.items as JsonSchema, item, `${at}/${i}`, root, problems));
    }
  }
  if (isObject(value)) {
    const properties = (s.properties ?? {}) as Record<string, JsonSchema>;
    for (const key of (s.required ?? []) as string[]) {
      if (!(key in value)) problems.push(`${where}: is missing "${key}"`);
    }
    for (const [key, item] of Object.entries(value)) {
      const path = `${at}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
      if (s.propertyNames !== undefined) {
        check(s.propertyNames as JsonSchema, key, path, root, problems);
      }
      if (Object.hasOwn(properties, key)) check(properties[key]!, item, path, root, problems);
      else if (s.additionalProperties === false) {
        problems.push(`${where}: has unknown property "${key}"`);
      } else if (s.additionalProperties !== undefined) {
        check(s.additionalProperties as JsonSchema, item, path, root, problems);
      }
    }
  }

  for (const keyword of ["oneOf", "anyOf"] as const) {
    const branches = s[keyword];
    if (!Array.isArray(branches)) continue;
    const results = branches.map((branch: JsonSchema) => {
      const found: string[] = [];
      check(branch, value, at, root, found);
      return found;
    });
    const passing = results.filter((r) => r.length === 0).length;
    if (passing === 0) problems.push(closestBranch(where, keyword, results));
    else if (keyword === "oneOf" && passing > 1) {
      problems.push(`${where}: matches ${passing} of oneOf's schemas, not exactly one`);
    }
  }
  if (s.not !== undefined) {
    const found: string[] = [];
    check(s.not as JsonSchema, value, at, root, found);
    if (found.length === 0) problems.push(`${where}: must not match the schema under "not"`);
  }
}

/** When no branch passes: the branch with the fewest problems explains best what is wrong. */
function closestBranch(where: string, keyword: string, results: string[][]): string {
  const best = results.reduce((a, b) => (b.length < a.length ? b : a), results[0] ?? []);
  return `${where}: matches none of ${keyword}'s schemas; nearest: ${best.join("; ")}`;
}
