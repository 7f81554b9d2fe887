/**
 * `deno task compile [--target TRIPLE] [--include PATH]...`: single executables
 * dist/bin/TRIPLE/stratos-relay, stratos-proxy and stratos-sat (`deno compile`), each carrying
 * the permission flags of its `deno task`. `deno task compile:arm64` is
 * `--target aarch64-unknown-linux-gnu`. `--include PATH` embeds files (e.g. runnables) in the
 * sat's executable.
 *
 * `deno compile` downloads the Deno runtime for the target (denort, ~40 MB) from
 * https://dl.deno.land on first use and keeps it in DENO_DIR. Without access to that host it
 * fails; this script then says so and how to proceed (DENORT_BIN, another machine, or
 * `deno task bundle`).
 *
 * @module
 */

// A command-line script: the console is its output.
// deno-lint-ignore-file no-console

import { BUNDLED_ROLES, bundleRunFlags } from "./bundle.ts";

const USAGE = "usage: deno task compile [--target TRIPLE] [--include PATH]...\n" +
  "       deno task compile:arm64 [--include PATH]...";

/** The host's target triple, as `deno compile --target` spells it. */
function hostTarget(): string {
  return Deno.build.target;
}

function parseArgs(args: readonly string[]): { target: string; include: string[] } {
  let target = hostTarget();
  const include: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = args[i + 1];
    if ((arg === "--target" || arg === "--include") && value !== undefined) {
      if (arg === "--target") target = value;
      else include.push(value);
      i++;
    } else {
      console.error(`unexpected argument "${arg}"\n${USAGE}`);
      Deno.exit(64);
    }
  }
  return { target, include };
}

const { target, include } = parseArgs(Deno.args);
const outDir = `dist/bin/${target}`;
await Deno.mkdir(outDir, { recursive: true });
for (const role of BUNDLED_ROLES) {
  const output = `${outDir}/stratos-${role}`;
  // deno compile embeds only statically imported modules: the Wasm worker, started from a URL,
  // must be included by hand (the relay runs no Wasm).
  const includes = role === "relay" ? [] : [
    "--include",
    "src/wasm/_worker.ts",
    ...(role === "sat" ? include : []).flatMap((
      path,
    ) => ["--include", path]),
  ];
  const args = [
    "compile",
    "--quiet",
    "--target",
    target,
    "--output",
    output,
    ...includes,
    ...(await bundleRunFlags(role)),
    `src/${role}.ts`,
  ];
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr);
  if (!result.success) {
    const download = /dl\.deno\.land|denort|error sending request/i.test(stderr);
    console.error(stderr.split(/\n\s*Stack backtrace:/)[0]!.trimEnd());
    if (download) {
      console.error(
        `\ndeno compile could not get the Deno runtime (denort) for ${target}: it downloads ` +
          "it from https://dl.deno.land on first use, and that download failed (above).\n" +
          "Fix: run this on a machine with internet access (the runtime is then cached in " +
          "DENO_DIR), or set DENORT_BIN to a denort binary of Deno " +
          `${Deno.version.deno} for ${target}, or use \`deno task bundle\` instead ` +
          "(dist/*.js, runs on any Deno 2.9, offline).",
      );
    }
    Deno.exit(1);
  }
  console.log(output);
}
