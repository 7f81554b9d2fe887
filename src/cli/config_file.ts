/**
 * `--config FILE`: flag values from a YAML or JSON file, a map from flag names to values, e.g.
 *
 * ```yaml
 * relay: relay.example.com:4000
 * http: 0.0.0.0:8080
 * log-level: warn
 * ```
 *
 * The command line and environment variables win over the file; the file wins over defaults.
 * Unknown keys and values of the wrong type are refused, naming the file and the key.
 *
 * @module
 */

import { parse } from "yaml";
import { type CommandSpec, UsageError } from "./flags.ts";

/** Most bytes a config file may have. */
export const MAX_CONFIG_BYTES = 64 * 1024;

/**
 * Reads the flag values of config file `path` for `command`.
 *
 * @throws UsageError when the file cannot be read or parsed, or has an unknown key or a
 *   value of the wrong type (the message names the file, the key and the fix)
 */
export async function readConfigFile(
  path: string,
  command: CommandSpec,
): Promise<Record<string, string | boolean>> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_CONFIG_BYTES) {
      throw new Error(`${info.size} bytes; at most ${MAX_CONFIG_BYTES}`);
    }
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(`--config ${path}: cannot read it: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = path.endsWith(".json") ? JSON.parse(text) : parse(text);
  } catch (error) {
    throw new UsageError(`--config ${path}: not valid YAML or JSON: ${(error as Error).message}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new UsageError(`--config ${path}: expected a map of flag names to values`);
  }
  const flags = new Map(
    command.flags.filter((f) => f.name !== "config").map((f) => [f.name, f]),
  );
  const values: Record<string, string | boolean> = {};
  for (const [key, value] of Object.entries(data)) {
    const flag = flags.get(key);
    if (!flag) {
      const near = [...flags.keys()].find((name) => similar(name, key));
      throw new UsageError(
        `--config ${path}: unknown key "${key}"` +
          (near
            ? ` (did you mean "${near}"?)`
            : `; the keys are the flags: ${[...flags.keys()].join(", ")}`),
      );
    }
    if (flag.type === "boolean") {
      if (typeof value !== "boolean") {
        throw new UsageError(
          `--config ${path}: "${key}" takes true or false, got ${JSON.stringify(value)}`,
        );
      }
      values[key] = value;
    } else {
      if (typeof value !== "string" && typeof value !== "number") {
        throw new UsageError(
          `--config ${path}: "${key}" takes a value like its flag, got ${JSON.stringify(value)}`,
        );
      }
      values[key] = String(value);
    }
  }
  return values;
}

/** Same letters give or take one edit, or one is a prefix of the other. */
function similar(a: string, b: string): boolean {
  if (a.startsWith(b) || b.startsWith(a)) return true;
  if (Math.abs(a.length - b.length) > 1) return false;
  let edits = 0;
  for (let i = 0, j = 0; i < a.length || j < b.length;) {
    if (a[i] === b[j]) {
      i++;
      j++;
      continue;
    }
    if (++edits > 1) return false;
    if (a.length > b.length) i++;
    else if (b.length > a.length) j++;
    else {
      i++;
      j++;
    }
  }
  return true;
}
