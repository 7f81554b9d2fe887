import assert from "node:assert/strict";
import { createLogger } from "../src/cli/mod.ts";
import { Cancellation, type InvokeHeader, type RunOutcome } from "../src/invocation/mod.ts";
import { observedRunner, SatMetrics } from "../src/sat/mod.ts";

const header = (fn: string, requestId: string): InvokeHeader => ({
  fn,
  method: "POST",
  url: "/x",
  requestId,
  headers: {},
  params: {},
});

Deno.test("observedRunner logs each invocation with its request id and counts it by outcome", async () => {
  const lines: string[] = [];
  const log = createLogger({
    service: "sat",
    level: "debug",
    format: "json",
    write: (line) => lines.push(line),
  });
  const metrics = new SatMetrics(() => true);
  const outcomes: Record<string, RunOutcome | Error> = {
    ok: { ok: true, output: new Uint8Array(1) },
    slow: { ok: false, code: 504, message: "over the time limit" },
    bad: { ok: false, code: 500, message: "trap" },
    throws: new Error("runner broke"),
  };
  const run = observedRunner(
    (h) => {
      const outcome = outcomes[h.fn]!;
      return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome);
    },
    log,
    metrics,
  );
  const cancellation = new Cancellation();
  assert.deepEqual(await run(header("ok", "r-ok"), new Uint8Array(0), cancellation), outcomes.ok);
  assert.deepEqual(
    await run(header("slow", "r-slow"), new Uint8Array(0), cancellation),
    outcomes.slow,
  );
  assert.deepEqual(
    await run(header("bad", "r-bad"), new Uint8Array(0), cancellation),
    outcomes.bad,
  );
  await assert.rejects(
    run(header("throws", "r-throws"), new Uint8Array(0), cancellation),
    /runner broke/,
  );

  const events = lines.map((line) => JSON.parse(line));
  assert.deepEqual(
    events.map((e) => [e.level, e.message, e.requestId, e.fn, e.code, e.error]),
    [
      ["debug", "invocation", "r-ok", "ok", undefined, undefined],
      ["warn", "invocation failed", "r-slow", "slow", 504, "over the time limit"],
      ["warn", "invocation failed", "r-bad", "bad", 500, "trap"],
      ["warn", "invocation failed", "r-throws", "throws", undefined, "runner broke"],
    ],
  );
  for (const event of events) assert.equal(typeof event.ms, "number");

  const page = metrics.registry.render();
  for (
    const [fn, outcome] of [["ok", "ok"], ["slow", "timeout"], ["bad", "error"], [
      "throws",
      "error",
    ]]
  ) {
    assert.match(
      page,
      new RegExp(`stratos_sat_invocations_total\\{fn="${fn}",outcome="${outcome}"\\} 1\\n`),
    );
    assert.match(
      page,
      new RegExp(`stratos_sat_invocation_duration_seconds_count\\{fn="${fn}"\\} 1\\n`),
    );
  }
});

Deno.test("observedRunner at info level writes only failures, and still counts every invocation", async () => {
  const lines: string[] = [];
  const log = createLogger({ service: "sat", format: "json", write: (line) => lines.push(line) });
  assert.equal(log.debugEnabled, false);
  assert.equal(createLogger({ service: "sat", level: "debug" }).debugEnabled, true);
  const metrics = new SatMetrics(() => true);
  const run = observedRunner(
    (h) =>
      Promise.resolve(
        h.fn === "ok"
          ? { ok: true, output: new Uint8Array(0) }
          : { ok: false, code: 500, message: "trap" },
      ),
    log,
    metrics,
  );
  const cancellation = new Cancellation();
  await run(header("ok", "r-1"), new Uint8Array(0), cancellation);
  await run(header("bad", "r-2"), new Uint8Array(0), cancellation);
  assert.deepEqual(lines.map((line) => JSON.parse(line).requestId), ["r-2"]);
  const page = metrics.registry.render();
  assert.match(page, /stratos_sat_invocations_total\{fn="ok",outcome="ok"\} 1\n/);
  assert.match(page, /stratos_sat_invocations_total\{fn="bad",outcome="error"\} 1\n/);
});
