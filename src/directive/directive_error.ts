/**
 * DirectiveError: every problem found in one Directive file, each with its position.
 *
 * @module
 */

/** One problem in a Directive file. */
export interface DirectiveProblem {
  /** The file name given to the parser. */
  readonly file: string;
  /** 1-based line. */
  readonly line: number;
  /** 1-based column. */
  readonly column: number;
  /**
   * Where in the Directive, e.g. `handlers[0].steps[1].fn`; empty for problems of the file as
   * a whole (YAML syntax, an empty file).
   */
  readonly path: string;
  /** What is wrong and how to fix it, e.g. `no runnable named "helo-rs" (did you mean ...)`. */
  readonly message: string;
}

/**
 * Formats one problem as `file:line:column: path: message` (the path part is left out when
 * empty), the form editors and terminals turn into links.
 *
 * @example
 * ```ts
 * formatProblem(problem); // 'Directive.yaml:12:9: handlers[0].steps[1].fn: no runnable named "helo-rs"'
 * ```
 */
export function formatProblem(problem: DirectiveProblem): string {
  const where = `${problem.file}:${problem.line}:${problem.column}`;
  return problem.path === ""
    ? `${where}: ${problem.message}`
    : `${where}: ${problem.path}: ${problem.message}`;
}

/**
 * A Directive file is unparseable or invalid. `problems` holds every problem found (not just
 * the first), in file order; the message lists them one per line, as {@link formatProblem}
 * writes them.
 *
 * @example
 * ```ts
 * try {
 *   parseDirective(text, { file: "Directive.yaml" });
 * } catch (err) {
 *   if (err instanceof DirectiveError) for (const p of err.problems) report(p.line, p.message);
 * }
 * ```
 */
export class DirectiveError extends SyntaxError {
  /** Always `"DirectiveError"`. */
  override readonly name = "DirectiveError";
  /** The file name given to the parser. */
  readonly file: string;
  /** Every problem found; never empty. */
  readonly problems: readonly DirectiveProblem[];

  /**
   * Collects problems into one error; the message lists them one per line.
   *
   * @param file the file name the problems refer to
   * @param problems at least one problem
   * @param options `cause`, when the problems come from an underlying error
   * @throws TypeError when `problems` is empty
   */
  constructor(file: string, problems: readonly DirectiveProblem[], options?: ErrorOptions) {
    if (problems.length === 0) throw new TypeError("a DirectiveError needs at least one problem");
    super(problems.map(formatProblem).join("\n"), options);
    this.file = file;
    this.problems = Object.freeze(problems.map((p) => Object.freeze({ ...p })));
  }

  /** Position of the first problem (the one nearest the top of the file). */
  get line(): number {
    return this.problems[0]!.line;
  }

  /** Column of the first problem. */
  get column(): number {
    return this.problems[0]!.column;
  }

  /** Path of the first problem. */
  get path(): string {
    return this.problems[0]!.path;
  }
}
