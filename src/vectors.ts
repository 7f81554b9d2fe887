// deno-lint-ignore-file no-console -- a CLI entry point: its output is the interface.
/**
 * `deno task vectors FILE.json`: runs Noise test vectors (cacophony JSON format) on every
 * crypto backend and prints one line per backend, then the per-vector total. Exit status 0
 * only when no vector failed.
 *
 * @module
 */

import { resolve } from "node:path";
import { BACKENDS, parseVectorFile, runVectors } from "./channel/mod.ts";

const USAGE = `usage: deno task vectors FILE.json

Runs Noise protocol test vectors in the cacophony JSON format (a top-level array, or
{"vectors": [...]}) through Stratos' Noise engine, on every crypto backend.
Prints "BACKEND: N passed, N failed, N skipped" per backend, then the total per vector.
A relative FILE is relative to the folder you ran the command in.
Exit status: 0 when no vector failed, 1 when one did, 2 on a usage or file error.`;

function main(args: string[]): number {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  if (args.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  // `deno task` runs in the folder of deno.json; INIT_CWD is where the user typed the command.
  const base = Deno.env.get("INIT_CWD") ?? Deno.cwd();
  const path = resolve(base, args[0]!);
  let vectors;
  try {
    vectors = parseVectorFile(Deno.readTextFileSync(path));
  } catch (error) {
    console.error(`${path}: ${(error as Error).message}`);
    return 2;
  }
  const { perBackend, overall, failures } = runVectors(vectors, BACKENDS);
  for (const f of failures) console.error(`FAIL ${f.protocol} [${f.backend}]: ${f.reason}`);
  for (const [name, t] of perBackend) {
    console.log(`${name}: ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`);
  }
  console.log(`${overall.passed} passed, ${overall.failed} failed, ${overall.skipped} skipped`);
  return overall.failed === 0 ? 0 : 1;
}

Deno.exit(main(Deno.args));
