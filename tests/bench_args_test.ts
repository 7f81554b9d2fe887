/**
 * The benchmark commands answer `--help` with their usage, and refuse a bad argument with what
 * was wrong (exit status 2) before they start anything.
 */
import assert from "node:assert/strict";
import { ROOT } from "./_services.ts";

/** Runs `deno <args>` from the repository root. */
async function deno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

const COMMANDS: { run: string[]; usage: string; bad: string[]; error: string }[] = [
  {
    run: ["task", "bench:e2e"],
    usage: "usage: deno task bench:e2e [SECONDS] [ROUNDS]",
    bad: ["5", "2.5"],
    error: 'ROUNDS must be a whole number, got "2.5"',
  },
  {
    run: ["task", "bench:compare"],
    usage: "usage: deno task bench:compare REV [ROUNDS] [SECONDS]",
    bad: ["HEAD", "1.5"],
    error: 'ROUNDS must be a whole number, got "1.5"',
  },
  {
    run: ["task", "bench:stream"],
    usage: "usage: deno task bench:stream [MIB]",
    bad: ["lots"],
    error: 'MIB must be a number above 0, got "lots"',
  },
  {
    run: ["task", "bench:idle"],
    usage: "usage: deno task bench:idle [N]",
    bad: ["10", "20"],
    error: 'unexpected argument "20"',
  },
  {
    run: ["run", "--allow-read", "--allow-run", "bench/job_gc.ts"],
    usage: "usage: deno run --allow-read --allow-run bench/job_gc.ts [JOBS]",
    bad: ["-5"],
    error: 'JOBS must be a number above 0, got "-5"',
  },
  {
    run: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      "bench/invocation_path.ts",
    ],
    usage: "bench/invocation_path.ts [N]",
    bad: ["0"],
    error: 'N must be a number above 0, got "0"',
  },
];

for (const command of COMMANDS) {
  const name = command.run.join(" ");
  Deno.test(`${name} --help prints its usage and exits 0`, async () => {
    const { code, stdout } = await deno([...command.run, "--help"]);
    assert.equal(code, 0);
    assert.ok(stdout.includes(command.usage), stdout);
    assert.match(stdout, /\(default \d/);
  });

  Deno.test(`${name} refuses ${command.bad.join(" ")} with status 2 and its usage`, async () => {
    const { code, stdout, stderr } = await deno([...command.run, ...command.bad]);
    assert.equal(code, 2, stderr);
    assert.ok(stderr.includes(command.error), stderr);
    assert.ok(stderr.includes(command.usage), stderr);
    // Nothing was started: no benchmark header or figures.
    assert.equal(stdout, "");
  });
}

Deno.test("bench:compare needs a revision, and refuses one git does not know, before starting anything", async () => {
  const missing = await deno(["task", "bench:compare"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /REV is required/);
  const unknown = await deno(["task", "bench:compare", "no-such-revision-here", "1", "1"]);
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /cannot export revision "no-such-revision-here"/);
  assert.equal(unknown.stdout, "");
});
