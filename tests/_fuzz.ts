/**
 * A small, seeded mutation fuzzer for tests: a PRNG, a byte mutator that knows the tricks that
 * break parsers (bit flips, inserted and deleted bytes, splices, truncation, length fields set
 * to boundary values), and a driver that runs N cases and names the seed of a failing one.
 *
 * Every case has its own 32-bit seed, derived from the surface's base seed and the case
 * number, so a failure replays alone:
 *
 * ```sh
 * STRATOS_FUZZ_SEED=0x1234abcd deno test ... tests/fuzz_test.ts   # run only that case
 * STRATOS_FUZZ_CASES=1000000 deno test ... tests/fuzz_test.ts     # more cases per surface
 * STRATOS_LONG=1 deno test ... tests/fuzz_test.ts                 # 10x the default cases
 * ```
 *
 * @module
 */

import { concatBytes } from "../src/wire/mod.ts";

/** Cases per in-process surface when nothing is set: at least 100k, as CI requires. */
export const DEFAULT_FUZZ_CASES = 100_000;
/** How much STRATOS_LONG=1 multiplies the case counts by. */
export const LONG_FACTOR = 10;

/** Values that sit on the edges parsers get wrong. */
export const INTERESTING_U8: readonly number[] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
/** 16- and 32-bit edge values, for length and id fields. */
export const INTERESTING_U32: readonly number[] = [
  0,
  1,
  2,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x3fff,
  0x4000,
  0x7fff,
  0x8000,
  0xffff,
  0x1_0000,
  0x4_0000,
  0x4_0001,
  0x7fff_ffff,
  0x8000_0000,
  0xffff_fffe,
  0xffff_ffff,
];

/**
 * sfc32 (Chris Doty-Humphrey's small fast counting generator): 128 bits of state, fast, good
 * enough statistics for fuzzing. Not cryptographic, and not meant to be.
 */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d = 1;

  /** @param seed any 32-bit integer; equal seeds give equal sequences */
  constructor(seed: number) {
    this.#a = 0x9e37_79b9;
    this.#b = 0x243f_6a88;
    this.#c = seed >>> 0;
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }

  /** True with probability 1/n. */
  oneIn(n: number): boolean {
    return this.int(n) === 0;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** A length that is usually small and sometimes large: most bugs live near 0. */
  size(max: number): number {
    const roll = this.int(8);
    if (roll < 5) return this.int(Math.min(max, 16) + 1);
    if (roll < 7) return this.int(Math.min(max, 256) + 1);
    return this.int(max + 1);
  }
}

/** splitmix32: turns (base seed, case number) into a well-spread case seed. */
export function caseSeed(base: number, index: number): number {
  let z = (base + Math.imul(index + 1, 0x9e37_79b9)) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85eb_ca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2_ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Options of {@link mutate}. */
export interface MutateOptions {
  /** Other valid inputs to splice pieces from. */
  readonly corpus?: readonly Uint8Array[];
  /** Offsets of known length or count fields (u8/u16/u32, big-endian) to tamper with. */
  readonly lengthFields?: readonly { readonly offset: number; readonly size: 1 | 2 | 4 }[];
  /** Most mutations stacked on one input; default 4. */
  readonly maxMutations?: number;
  /** Largest output; default 1 MiB. */
  readonly maxLen?: number;
}

/**
 * A mutated copy of `sample`: 1 to `maxMutations` of bit flips, byte sets (random or
 * interesting), inserted, deleted or duplicated ranges, splices from the corpus, truncation,
 * appended garbage, and big-endian u16/u32 fields overwritten with boundary values (at a known
 * length field when given, else anywhere). Deterministic for a given PRNG state.
 */
export function mutate(rng: Prng, sample: Uint8Array, options: MutateOptions = {}): Uint8Array {
  const maxLen = options.maxLen ?? 1024 * 1024;
  let out: Uint8Array = sample.slice();
  const count = 1 + rng.int(options.maxMutations ?? 4);
  for (let m = 0; m < count; m++) {
    const len = out.length;
    switch (rng.int(11)) {
      case 0: // flip one bit
        if (len > 0) out[rng.int(len)]! ^= 1 << rng.int(8);
        break;
      case 1: // set a byte to an interesting value
        if (len > 0) out[rng.int(len)] = rng.pick(INTERESTING_U8);
        break;
      case 2: // set a byte at random
        if (len > 0) out[rng.int(len)] = rng.int(256);
        break;
      case 3: { // insert random bytes
        const at = rng.int(len + 1);
        out = join(out.subarray(0, at), rng.bytes(1 + rng.size(64)), out.subarray(at));
        break;
      }
      case 4: { // delete a range
        if (len === 0) break;
        const at = rng.int(len);
        const n = 1 + rng.int(Math.min(len - at, 1 + rng.size(64)));
        out = join(out.subarray(0, at), out.subarray(at + n));
        break;
      }
      case 5: { // duplicate a range
        if (len === 0) break;
        const at = rng.int(len);
        const n = 1 + rng.int(Math.min(len - at, 64));
        out = join(out.subarray(0, at + n), out.subarray(at, at + n), out.subarray(at + n));
        break;
      }
      case 6: { // splice: our head, another sample's tail
        const other = options.corpus?.length ? rng.pick(options.corpus) : out;
        const cut = rng.int(len + 1);
        out = join(out.subarray(0, cut), other.subarray(rng.int(other.length + 1)));
        break;
      }
      case 7: // truncate
        out = out.slice(0, rng.int(len + 1));
        break;
      case 8: // append garbage
        out = join(out, rng.bytes(1 + rng.size(32)));
        break;
      case 9:
      case 10: { // tamper with a length field
        const field = options.lengthFields?.length && rng.oneIn(4) === false
          ? rng.pick(options.lengthFields)
          : { offset: rng.int(Math.max(len, 1)), size: rng.pick([1, 2, 4] as const) };
        writeBigEndian(out, field.offset, field.size, fieldValue(rng, field.size, out, field));
        break;
      }
    }
  }
  return out.length > maxLen ? out.subarray(0, maxLen) : out;
}

function fieldValue(
  rng: Prng,
  size: 1 | 2 | 4,
  out: Uint8Array,
  field: { offset: number },
): number {
  const mask = size === 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
  switch (rng.int(4)) {
    case 0:
      return rng.pick(INTERESTING_U32) & mask;
    case 1: { // off by a little from the true remaining length
      const rest = out.length - field.offset - size;
      return (rest + rng.int(5) - 2) & mask;
    }
    case 2: { // the current value, nudged
      const current = readBigEndian(out, field.offset, size);
      return (current + rng.pick([-1, 1, -2, 2, 0x80, -0x80])) & mask;
    }
    default:
      return rng.u32() & mask;
  }
}

function readBigEndian(bytes: Uint8Array, offset: number, size: number): number {
  let value = 0;
  for (let i = 0; i < size; i++) value = value * 256 + (bytes[offset + i] ?? 0);
  return value;
}

/** Writes what fits of a big-endian field; bytes past the end are dropped. */
function writeBigEndian(bytes: Uint8Array, offset: number, size: number, value: number): void {
  for (let i = size - 1; i >= 0; i--) {
    if (offset + i < bytes.length) bytes[offset + i] = value & 0xff;
    value = Math.floor(value / 256);
  }
}

/** Concatenates byte arrays into a new one. */
export function join(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

/** Text mutation for text formats (YAML, HTTP): byte mutations plus token-level ones. */
export function mutateText(
  rng: Prng,
  sample: string,
  tokens: readonly string[],
  corpus: readonly string[] = [],
): string {
  const lines = sample.split("\n");
  const count = 1 + rng.int(4);
  for (let m = 0; m < count; m++) {
    const at = rng.int(lines.length);
    const line = lines[at] ?? "";
    switch (rng.int(8)) {
      case 0: // drop a line
        lines.splice(at, 1);
        break;
      case 1: // duplicate a line
        lines.splice(at, 0, line);
        break;
      case 2: { // insert a token inside a line
        const col = rng.int(line.length + 1);
        lines[at] = line.slice(0, col) + rng.pick(tokens) + line.slice(col);
        break;
      }
      case 3: // replace the rest of a line with a token
        lines[at] = line.slice(0, rng.int(line.length + 1)) + rng.pick(tokens);
        break;
      case 4: // change indentation
        lines[at] = rng.oneIn(2) ? " ".repeat(1 + rng.int(4)) + line : line.trimStart();
        break;
      case 5: { // a line from another sample
        const other = corpus.length ? rng.pick(corpus).split("\n") : lines;
        lines.splice(at, 0, other[rng.int(other.length)] ?? "");
        break;
      }
      case 6: // swap two lines
        {
          const other = rng.int(lines.length);
          lines[at] = lines[other] ?? "";
          lines[other] = line;
        }
        break;
      default: { // byte-level mutation of one line
        const bytes = mutate(rng, new TextEncoder().encode(line), { maxMutations: 2 });
        lines[at] = new TextDecoder().decode(bytes);
      }
    }
  }
  return lines.join("\n");
}

function envNumber(name: string): number | undefined {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** True when STRATOS_LONG=1 asks for the long runs. */
export function longRun(): boolean {
  return Deno.env.get("STRATOS_LONG") === "1";
}

/**
 * How many cases to run: STRATOS_FUZZ_CASES when set, else `defaultCases` (times
 * {@link LONG_FACTOR} under STRATOS_LONG=1).
 */
export function fuzzCases(defaultCases: number = DEFAULT_FUZZ_CASES): number {
  return envNumber("STRATOS_FUZZ_CASES") ?? defaultCases * (longRun() ? LONG_FACTOR : 1);
}

/** The single case seed to replay (STRATOS_FUZZ_SEED, decimal or 0x hex), if any. */
export function replaySeed(): number | undefined {
  return envNumber("STRATOS_FUZZ_SEED");
}

/** A fuzz case failed; the message names the surface, the seed and how to replay it. */
export class FuzzFailure extends Error {
  override readonly name = "FuzzFailure";
  /** The case's seed. */
  readonly seed: number;
  constructor(surface: string, seed: number, input: string, options: ErrorOptions) {
    const hex = `0x${seed.toString(16).padStart(8, "0")}`;
    super(
      `${surface}: case seed ${hex} failed: ${String((options.cause as Error)?.message)}\n` +
        `  input: ${input}\n  replay: STRATOS_FUZZ_SEED=${hex} deno test ... (this file)`,
      options,
    );
    this.seed = seed;
  }
}

/** Shows an input in a failure message: its length and up to 96 bytes in hex. */
export function describeInput(input: unknown): string {
  if (input instanceof Uint8Array) {
    const head = input.subarray(0, 96).toHex();
    return `${input.length} bytes: ${head}${input.length > 96 ? "..." : ""}`;
  }
  const text = typeof input === "string" ? input : JSON.stringify(input) ?? String(input);
  return JSON.stringify(text.length > 300 ? text.slice(0, 300) + "..." : text);
}

let quietDepth = 0;
let savedStackTraceLimit: number | undefined;

/**
 * Runs without stack traces: a failing case costs the parser an exception, and V8 spends most
 * of that on capturing the stack (about 100 µs of a 140 µs failed frame open). A replay
 * (STRATOS_FUZZ_SEED) keeps full stacks. Nests, also across concurrent async runs; the
 * returned restore function is idempotent.
 */
function quiet(): () => void {
  if (replaySeed() !== undefined) return () => {};
  if (quietDepth++ === 0) {
    savedStackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
  }
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    if (--quietDepth === 0) Error.stackTraceLimit = savedStackTraceLimit ?? 10;
  };
}

/** Options of {@link fuzz}. */
export interface FuzzOptions {
  /** Cases to run; default {@link fuzzCases}(). */
  readonly cases?: number;
  /** Base seed of this surface (each surface its own, so they explore different inputs). */
  readonly seed: number;
}

/**
 * Runs `check` for each case with a PRNG seeded by that case's seed; with STRATOS_FUZZ_SEED set
 * runs only that seed. `check` returns the input it tried (for the failure message) and
 * throws when the property does not hold.
 *
 * @returns how many cases ran
 * @throws FuzzFailure naming the first failing seed
 */
export function fuzz(
  surface: string,
  options: FuzzOptions,
  check: (rng: Prng, record: (input: unknown) => void) => void,
): number {
  const replay = replaySeed();
  const seeds = replay !== undefined ? [replay] : undefined;
  const cases = seeds?.length ?? options.cases ?? fuzzCases();
  const loud = quiet();
  try {
    for (let i = 0; i < cases; i++) {
      const seed = seeds?.[i] ?? caseSeed(options.seed, i);
      let input: unknown = "(none recorded)";
      try {
        check(new Prng(seed), (value) => input = value);
      } catch (cause) {
        loud();
        throw new FuzzFailure(surface, seed, describeInput(input), { cause });
      }
    }
  } finally {
    loud();
  }
  return cases;
}

/** The async form of {@link fuzz}, for stateful surfaces that await. */
export async function fuzzAsync(
  surface: string,
  options: FuzzOptions,
  check: (rng: Prng, record: (input: unknown) => void) => Promise<void>,
): Promise<number> {
  const replay = replaySeed();
  const seeds = replay !== undefined ? [replay] : undefined;
  const cases = seeds?.length ?? options.cases ?? fuzzCases();
  const loud = quiet();
  try {
    for (let i = 0; i < cases; i++) {
      const seed = seeds?.[i] ?? caseSeed(options.seed, i);
      let input: unknown = "(none recorded)";
      try {
        await check(new Prng(seed), (value) => input = value);
      } catch (cause) {
        loud();
        throw new FuzzFailure(surface, seed, describeInput(input), { cause });
      }
    }
  } finally {
    loud();
  }
  return cases;
}

/**
 * Asserts that `error` is one of the `allowed` error classes; otherwise rethrows it with a
 * message naming what was expected.
 */
export function expectErrorType(
  error: unknown,
  allowed: readonly (abstract new (...args: never[]) => Error)[],
): void {
  if (allowed.some((type) => error instanceof type)) return;
  const names = allowed.map((t) => t.name).join(" or ");
  const got = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  throw new Error(`expected ${names}, got ${got}`, { cause: error });
}

/** Heap in use now, in MiB (for reports and bounds). */
export function heapMiB(): number {
  return Deno.memoryUsage().heapUsed / (1024 * 1024);
}
