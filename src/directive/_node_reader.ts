/**
 * Reads a parsed YAML node tree as untyped input: type checks that report a problem (with the
 * node's position and a path label) instead of throwing, so one walk collects every problem.
 *
 * @module
 */

import { type Document, isAlias, isMap, isPair, isScalar, isSeq, type LineCounter } from "yaml";
import type { DirectiveProblem } from "./directive_error.ts";
import { closest } from "./_suggest.ts";

/** Aliases (`*name`) followed in one file before giving up: bounds "billion laughs" input. */
export const MAX_ALIAS_RESOLUTIONS = 100;

/** Thrown by {@link NodeReader.resolve} to end the walk once the alias budget is spent. */
export class AliasBudgetError extends RangeError {
  override readonly name = "AliasBudgetError";
}

/** A `key: value` pair of a map, keyed by a string. */
export interface Entry {
  /** The key as a string. */
  readonly key: string;
  /** Path label of the value, e.g. `handlers[0].steps`. */
  readonly path: string;
  /** The value node (aliases resolved); null or a null scalar for an empty value. */
  readonly value: unknown;
  /** Offset of the key. */
  readonly keyAt: number;
  /**
   * Offset problems about the value are reported at: the key's, so that a problem's position
   * and its path (which ends with the key) point at the same place.
   */
  readonly at: number;
}

/** A map's entries by key, with the map's own position and path. */
export interface Fields {
  /** Path label of the map. */
  readonly path: string;
  /** Offset of the map. */
  readonly at: number;
  /** Entries by key (first occurrence; duplicates are reported and dropped). */
  readonly entries: ReadonlyMap<string, Entry>;
}

/** An item of a list. */
export interface Item {
  /** Path label, e.g. `handlers[2]`. */
  readonly path: string;
  /** The item node (aliases resolved). */
  readonly value: unknown;
  /** Offset of the item. */
  readonly at: number;
}

/** Appends a key to a path label: `a.b`, `a[404]`, `a["user-data"]`. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === "number" || /^\d+$/.test(key)) return `${path}[${key}]`;
  if (/^[A-Za-z_$][\w$]*$/.test(key)) return path === "" ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

/** Walks YAML nodes, collecting problems. */
export class NodeReader {
  /** Every problem reported so far. */
  readonly problems: DirectiveProblem[] = [];
  readonly #file: string;
  readonly #lines: LineCounter;
  readonly #doc: Document;
  readonly #duplicateKeys: Set<number>;
  #aliases = 0;

  /**
   * @param doc the parsed document (to resolve aliases)
   * @param lines the LineCounter the document was parsed with
   * @param file file name for problems
   * @param duplicateKeys offsets of keys the parser found duplicated; reported with their path
   *   when the walk meets them, and removed from the set
   */
  constructor(
    doc: Document,
    lines: LineCounter,
    file: string,
    duplicateKeys: Set<number>,
  ) {
    this.#doc = doc;
    this.#lines = lines;
    this.#file = file;
    this.#duplicateKeys = duplicateKeys;
  }

  /** Reports a problem at an offset. */
  report(at: number, path: string, message: string): void {
    const { line, column } = this.position(at);
    this.problems.push({ file: this.#file, line, column, path, message });
  }

  /** 1-based line and column of an offset. */
  position(at: number): { line: number; column: number } {
    const { line, col } = this.#lines.linePos(at);
    return { line, column: col };
  }

  /** Offset where a node starts (0 when it has no range). */
  offset(node: unknown): number {
    const range = (node as { range?: readonly number[] } | null)?.range;
    return range?.[0] ?? 0;
  }

  /**
   * Follows an alias to its anchored node.
   *
   * @throws AliasBudgetError (after reporting it) past {@link MAX_ALIAS_RESOLUTIONS}
   */
  resolve(node: unknown, path: string): unknown {
    if (!isAlias(node)) return node;
    if (++this.#aliases > MAX_ALIAS_RESOLUTIONS) {
      this.report(
        this.offset(node),
        path,
        `more than ${MAX_ALIAS_RESOLUTIONS} aliases; write the values out`,
      );
      throw new AliasBudgetError();
    }
    return node.resolve(this.#doc) ?? null;
  }

  /** True for a missing or empty (`key:` / `~` / `null`) value. */
  isNull(node: unknown): boolean {
    return node === null || node === undefined || (isScalar(node) && node.value === null);
  }

  /** Describes a node for "got ..." in messages: `a map`, `a list`, `"text"`, `42`, `nothing`. */
  describe(node: unknown): string {
    if (isMap(node)) return "a map";
    if (isSeq(node)) return "a list";
    if (this.isNull(node)) return "nothing";
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
      if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") {
        return node.source ?? String(v);
      }
      return "binary data";
    }
    return "an unsupported value";
  }

  /** Reports `must be <expected>, got <actual>`. */
  wrongType(node: unknown, at: number, path: string, expected: string): void {
    const subject = path === "" ? "the Directive " : "";
    this.report(at, path, `${subject}must be ${expected}, got ${this.describe(node)}`);
  }

  /**
   * A map's entries, checking keys: every key must be in `allowed` (others are reported as
   * unknown, with a "did you mean"), and duplicated keys are reported. Undefined (reported)
   * when the node is not a map.
   */
  fields(
    node: unknown,
    at: number,
    path: string,
    expected: string,
    allowed?: readonly string[],
  ): Fields | undefined {
    const map = this.resolve(node, path);
    if (!isMap(map)) {
      this.wrongType(map, at, path, expected);
      return undefined;
    }
    const entries = new Map<string, Entry>();
    for (const pair of map.items) {
      if (!isPair(pair)) continue;
      const keyAt = this.offset(pair.key) || at;
      const keyNode = this.resolve(pair.key, path);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === "object") {
        this.report(keyAt, path, `keys must be plain names, got ${this.describe(keyNode)}`);
        continue;
      }
      const key = typeof keyNode.value === "string"
        ? keyNode.value
        : keyNode.source ?? String(keyNode.value);
      const keyPath = childPath(path, key);
      if (this.#duplicateKeys.delete(keyAt) || entries.has(key)) {
        const first = entries.get(key);
        const where = first ? ` (first at line ${this.#lines.linePos(first.keyAt).line})` : "";
        this.report(keyAt, keyPath, `duplicate key "${key}"${where}; keep one of them`);
        continue;
      }
      if (key === "<<") {
        this.report(keyAt, keyPath, `YAML merge keys ("<<") are not supported; write the keys out`);
        continue;
      }
      if (allowed && !allowed.includes(key)) {
        const guess = closest(key, allowed);
        this.report(
          keyAt,
          keyPath,
          guess
            ? `unknown key "${key}" (did you mean "${guess}"?)`
            : `unknown key "${key}"; expected one of: ${allowed.join(", ")}`,
        );
        continue;
      }
      const value = this.resolve(pair.value, keyPath);
      entries.set(key, { key, path: keyPath, value, keyAt, at: keyAt });
    }
    return { path, at: this.offset(map) || at, entries };
  }

  /** A list's items; undefined (reported) when the node is not a list. */
  items(node: unknown, at: number, path: string, expected: string): Item[] | undefined {
    const seq = this.resolve(node, path);
    if (!isSeq(seq)) {
      this.wrongType(seq, at, path, expected);
      return undefined;
    }
    const out: Item[] = [];
    seq.items.forEach((raw, i) => {
      const itemPath = childPath(path, i);
      const value = this.resolve(raw, itemPath);
      out.push({ path: itemPath, value, at: this.offset(raw) || at });
    });
    return out;
  }

  /** A string scalar; undefined (reported) otherwise, or when empty and `nonEmpty`. */
  string(entry: Entry, expected: string, nonEmpty = true): string | undefined {
    const node = entry.value;
    if (isScalar(node) && typeof node.value === "string") {
      if (!nonEmpty || node.value !== "") return node.value;
    }
    this.wrongType(node, entry.at, entry.path, expected);
    return undefined;
  }

  /** `true` or `false`; undefined (reported) otherwise. */
  boolean(entry: Entry): boolean | undefined {
    const node = entry.value;
    if (isScalar(node) && typeof node.value === "boolean") return node.value;
    this.wrongType(node, entry.at, entry.path, "true or false");
    return undefined;
  }

  /** A non-negative safe integer; undefined (reported) otherwise. */
  count(entry: Entry, expected = "a whole number, 0 or more"): number | undefined {
    const node = entry.value;
    if (isScalar(node) && Number.isSafeInteger(node.value) && (node.value as number) >= 0) {
      return node.value as number;
    }
    this.wrongType(node, entry.at, entry.path, expected);
    return undefined;
  }

  /** A scalar of any type as text (its source for numbers and booleans). */
  text(entry: Entry, expected: string): string | undefined {
    const node = entry.value;
    if (isScalar(node) && node.value !== null) {
      const v = node.value;
      if (typeof v === "string") return v;
      if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") {
        return node.source ?? String(v);
      }
    }
    this.wrongType(node, entry.at, entry.path, expected);
    return undefined;
  }

  /**
   * Converts a node to plain, deeply frozen data (maps to objects, lists to arrays), for
   * sections kept as written; duplicate keys and alias limits are still reported.
   */
  plain(node: unknown, at: number, path: string): unknown {
    const value = this.resolve(node, path);
    if (isMap(value)) {
      const fields = this.fields(value, at, path, "a map");
      const out: Record<string, unknown> = {};
      for (const e of fields?.entries.values() ?? []) {
        out[e.key] = this.plain(e.value, e.at, e.path);
      }
      return Object.freeze(out);
    }
    if (isSeq(value)) {
      const items = this.items(value, at, path, "a list") ?? [];
      return Object.freeze(items.map((item) => this.plain(item.value, item.at, item.path)));
    }
    if (isScalar(value)) return value.value;
    return null;
  }
}
