// deno-lint-ignore-file no-console -- usage and argument errors go to the terminal.
/**
 * Positional number arguments of the benchmark scripts, with `--help`: a bad argument stops
 * the script with what was wrong and its usage (exit status 2) before anything starts.
 *
 * @module
 */

/** One positional argument. */
export interface NumberArg {
  /** Its name in the usage line, e.g. `SECONDS`. */
  readonly name: string;
  /** What it is, for --help. */
  readonly help: string;
  /** Its value when not given. */
  readonly default: number;
  /** True when it must be a whole number. */
  readonly integer?: boolean;
}

/** A required positional argument taken as text, before the numbers. */
export interface TextArg {
  /** Its name in the usage line, e.g. `REV`. */
  readonly name: string;
  /** What it is, for --help. */
  readonly help: string;
}

/**
 * Reads `args` (default `Deno.args`) as the positional numbers `specs`, each above 0.
 * Prints the usage and exits with status 0 on `--help` or `-h`, with status 2 on anything else
 * that is not such a number or is one too many.
 *
 * @param command how the script is run, e.g. `deno task bench:e2e`
 * @param about one line on what the script measures
 */
export function numberArgs(
  command: string,
  about: string,
  specs: readonly NumberArg[],
  args: readonly string[] = Deno.args,
): number[] {
  return benchArgs(command, about, [], specs, args).numbers;
}

/**
 * Like {@linkcode numberArgs}, after required text arguments `texts` (each must be given).
 *
 * @returns the texts and the numbers, in their orders
 */
export function benchArgs(
  command: string,
  about: string,
  texts: readonly TextArg[],
  specs: readonly NumberArg[],
  args: readonly string[] = Deno.args,
): { texts: string[]; numbers: number[] } {
  const usage = [
    `usage: ${command} ${
      [...texts.map((t) => t.name), ...specs.map((s) => `[${s.name}]`)].join(" ")
    }`,
    "",
    about,
    "",
    ...texts.map((t) => `  ${t.name.padEnd(10)} ${t.help}`),
    ...specs.map((s) => `  ${s.name.padEnd(10)} ${s.help} (default ${s.default})`),
  ].join("\n");
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage);
    Deno.exit(0);
  }
  const fail = (message: string): never => {
    console.error(`${command}: ${message}\n\n${usage}`);
    Deno.exit(2);
  };
  const given = args.slice(0, texts.length);
  if (given.length < texts.length) fail(`${texts[given.length]!.name} is required`);
  const rest = args.slice(texts.length);
  if (rest.length > specs.length) fail(`unexpected argument "${rest[specs.length]}"`);
  const numbers = specs.map((spec, i) => {
    const text = rest[i];
    if (text === undefined) return spec.default;
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value) || value <= 0) {
      fail(`${spec.name} must be a number above 0, got "${text}"`);
    }
    if (spec.integer && !Number.isInteger(value)) {
      fail(`${spec.name} must be a whole number, got "${text}"`);
    }
    return value;
  });
  return { texts: given, numbers };
}
