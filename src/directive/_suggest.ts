/**
 * "Did you mean" hints: the closest candidate by edit distance, when it is close enough.
 *
 * @module
 */

/**
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions, each edit
 * costing 1), so `"helo"`→`"hello"` and `"mehtod"`→`"method"` are both 1.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  // Three rolling rows: two back is needed for transpositions.
  let prev2 = new Array<number>(b.length + 1).fill(0);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let row = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, prev2[j - 2]! + 1);
      }
      row[j] = d;
    }
    [prev2, prev, row] = [prev, row, prev2];
  }
  return prev[b.length]!;
}

/**
 * The candidate closest to `input`, if a typo could explain the difference: at most 2 edits
 * and at most a third of the input's length (at least 1, so `"fm"` suggests `"fn"`).
 * Comparison ignores case, so `"get"` suggests `"GET"`. Ties go to the earliest candidate.
 */
export function closest(input: string, candidates: Iterable<string>): string | undefined {
  const folded = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(folded, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = Math.min(2, Math.max(1, Math.floor(input.length / 3)));
  return best !== undefined && bestDistance <= limit && best !== input ? best : undefined;
}
