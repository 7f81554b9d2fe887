// Tests of the inline lane (src/wasm/_inline_lane.ts): short jobs of self-contained runnables
// answered on the pool's own thread, within a budget a watchdog worker enforces, and the
// fallback to the workers. Needs --allow-read. The modules: runnables/helloworld-rs/
// helloworld-rs.wasm and tests/wasm/*.wasm (built from the .wat beside them by
// tests/wasm/build.sh).

import assert from "node:assert/strict";
import {
  type RequestInfo,
  Runnable,
  type RunnableLogFields,
  type RunnableLogLevel,
  RunnablePool,
  type RunResult,
} from "../src/wasm/mod.ts";
import { HELLO_FILE, load, testModule } from "./_wasm_modules.ts";
import { INLINE_STRIKES, WATCHDOG_IDLE_MS } from "../src/wasm/_inline_lane.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const COUNTER_FILE = testModule("counter");
const SLOW_FILE = testModule("slow");
const WASI_FILE = testModule("wasi_probe");
const FETCH_FILE = testModule("fetch_probe");
const MORE_FILE = testModule("abi_more");
const ECHO_FILE = testModule("echo");
/** Most jobs {@linkcode warmLane} runs while the watchdog starts. */
const MAX_WARMUP_JOBS = 500;

function run(runnable: Runnable, input: string, request?: RequestInfo): Promise<RunResult> {
  return runnable.run(encoder.encode(input), request);
}

function output(result: RunResult): string {
  assert.ok(result.ok, `expected a result, got ${JSON.stringify(result)}`);
  return decoder.decode(result.output);
}

/**
 * Runs helloworld jobs until one is answered inline: the lane takes jobs only once its
 * watchdog has started (the jobs before go to a worker).
 */
async function warmLane(pool: RunnablePool, hello: Runnable): Promise<void> {
  for (let i = 0; i < MAX_WARMUP_JOBS; i++) {
    const before = pool.inlineJobs;
    assert.equal(output(await run(hello, `warm ${i}`)), `hello, warm ${i}`);
    if (pool.inlineJobs > before) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`no job ran inline in ${MAX_WARMUP_JOBS} tries`);
}

/**
 * Runs about 100 s of spinning in `slow` (loaded with a 200 ms time limit): only the watchdog's
 * interrupt ends it on the lane, and a worker then answers 504 at the time limit.
 */
async function assertLoopStopped(pool: RunnablePool, slow: Runnable): Promise<void> {
  const before = pool.inlineJobs;
  assert.deepEqual(await run(slow, "100000"), {
    ok: false,
    code: 504,
    message: 'runnable "slow" exceeded its time limit of 200 ms',
  });
  assert.equal(pool.inlineJobs, before, "the lane's attempt is not an answer");
}

Deno.test("the inline lane answers helloworld on the pool's own thread", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  await warmLane(pool, hello);

  const before = pool.inlineJobs;
  assert.equal(output(await run(hello, "my friend")), "hello, my friend");
  // Jobs submitted in one turn run in the same pump, each answered with its own output.
  const names = Array.from({ length: 20 }, (_, i) => `friend ${i}`);
  const results = await Promise.all(names.map((name) => run(hello, name)));
  assert.deepEqual(results.map(output), names.map((name) => `hello, ${name}`));
  // Each of them, unless the thread stalled past the budget (a job then goes to a worker).
  assert.ok(pool.inlineJobs > before, `${pool.inlineJobs - before} of 21 jobs ran inline`);
});

Deno.test("the inline lane takes inputs of at most 64 KiB, whole", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  using echo = await load(ECHO_FILE, "echo", { pool });
  await warmLane(pool, hello);

  const before = pool.inlineJobs;
  const large = new Uint8Array(64 * 1024 + 1).fill(0x61);
  assert.deepEqual(await echo.run(large), { ok: true, output: large });
  const streamed = { size: 3, chunks: ReadableStream.from([encoder.encode("abc")]) };
  assert.equal(output(await echo.run(streamed)), "abc");
  assert.equal(pool.inlineJobs, before, "neither ran inline");
  const fits = large.subarray(1);
  assert.deepEqual(await echo.run(fits), { ok: true, output: fits });
  assert.equal(pool.inlineJobs, before + 1);
});

Deno.test("allocOutput makes the array of every output, from the inline lane or a worker", async () => {
  // Arrays at an offset into buffers of their own: not what the default would make.
  const made = new Set<Uint8Array>();
  const allocOutput = (size: number) => {
    const array = new Uint8Array(new ArrayBuffer(size + 16), 16, size);
    made.add(array);
    return array;
  };
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool, allocOutput });
  using echo = await load(ECHO_FILE, "echo", { pool, allocOutput });
  await warmLane(pool, hello);

  const before = pool.inlineJobs;
  const inline = await run(hello, "my friend");
  assert.equal(pool.inlineJobs, before + 1);
  const large = new Uint8Array(64 * 1024 + 1).fill(0x61);
  const fromWorker = await echo.run(large);
  assert.equal(pool.inlineJobs, before + 1, "the large job ran in the worker");
  const expected = [encoder.encode("hello, my friend"), large];
  [inline, fromWorker].forEach((result, i) => {
    assert.ok(result.ok);
    assert.deepEqual(result.output, expected[i]);
    assert.ok(made.has(result.output), `output ${i} is an array allocOutput made`);
    assert.equal(result.output.byteOffset, 16);
  });
});

Deno.test("the inline lane never takes a module that imports fetch_url or cache_*", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  using fetcher = await load(FETCH_FILE, "fetch_probe", { pool });
  using cached = await load(MORE_FILE, "abi_more", { pool });
  await warmLane(pool, hello);

  const before = pool.inlineJobs;
  const fetched = await run(fetcher, "0nhttp://127.0.0.1:9/\n");
  assert.ok(!fetched.ok, "no host is allowed: the fetch is refused");
  assert.equal(output(await run(cached, "s05greethello")), "ok");
  assert.equal(output(await run(cached, "ggreet")), "hello");
  assert.equal(output(await run(cached, "xyz")), "xyz");
  assert.equal(pool.inlineJobs, before);
  // The lane still takes what it may.
  assert.equal(output(await run(hello, "again")), "hello, again");
  assert.equal(pool.inlineJobs, before + 1);
});

Deno.test("a looping job is stopped on the lane and meets its time limit in a worker", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  using slow = await load(SLOW_FILE, "slow", { pool, timeoutMs: 200 });
  await warmLane(pool, hello);

  const before = pool.inlineJobs;
  // Three overruns demote the runnable.
  for (let strike = 0; strike < INLINE_STRIKES; strike++) await assertLoopStopped(pool, slow);
  // Its later jobs go to the workers; the lane keeps serving the others.
  assert.equal(output(await run(slow, "0")), "0");
  assert.equal(pool.inlineJobs, before);
  assert.equal(output(await run(hello, "still here")), "hello, still here");
  assert.equal(pool.inlineJobs, before + 1);
});

Deno.test("the watchdog, asleep after a quiet spell, wakes to stop a looping job", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  using slow = await load(SLOW_FILE, "slow", { pool, timeoutMs: 200 });
  await warmLane(pool, hello);
  // A quick job first, so that the lane holds the instance (the watchdog its interrupt word)
  // and nothing but the job itself wakes the watchdog below.
  let before = pool.inlineJobs;
  assert.equal(output(await run(slow, "0")), "0");
  assert.equal(pool.inlineJobs, before + 1);
  // No job for longer than the watchdog polls: it sleeps.
  await new Promise((resolve) => setTimeout(resolve, WATCHDOG_IDLE_MS + 300));

  before = pool.inlineJobs;
  await assertLoopStopped(pool, slow);
  assert.equal(output(await run(hello, "awake")), "hello, awake");
  assert.equal(pool.inlineJobs, before + 1);
});

Deno.test("a job a little over the lane's budget is answered by a worker", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  using slow = await load(SLOW_FILE, "slow", { pool });
  await warmLane(pool, hello);

  const warm = pool.inlineJobs;
  assert.equal(output(await run(slow, "0")), "0");
  assert.equal(pool.inlineJobs, warm + 1, "a quick job of it runs inline");
  const quick = pool.inlineJobs;
  // 6 million iterations of its loop, about 5 ms on a 2-core x86-64 box (slow.wat's "ms" are
  // nominal): over the 2 ms budget, so run again in a worker and answered there.
  assert.equal(output(await run(slow, "10")), "10");
  assert.equal(pool.inlineJobs, quick);
  // One overrun alone does not demote it.
  assert.equal(output(await run(slow, "0")), "0");
  assert.equal(pool.inlineJobs, quick + 1);
  for (let strike = 1; strike < INLINE_STRIKES; strike++) {
    assert.equal(output(await run(slow, "10")), "10");
  }
  assert.equal(output(await run(slow, "0")), "0");
  assert.equal(pool.inlineJobs, quick + 1, "struck out: it goes to the workers from then on");
});

Deno.test("logs of an inline job reach the log callback once", async () => {
  const logs: [RunnableLogLevel, string, RunnableLogFields][] = [];
  const log = (level: RunnableLogLevel, message: string, fields: RunnableLogFields) => {
    logs.push([level, message, fields]);
  };
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  using wasi = await load(WASI_FILE, "wasi_probe", { pool, log });
  await warmLane(pool, hello);

  const before = pool.inlineJobs;
  const request: RequestInfo = {
    method: "POST",
    url: "/wasi",
    id: "req-7",
    body: new Uint8Array(0),
    headers: {},
    params: {},
    state: {},
  };
  const out = await run(wasi, "ohello\nwor", request);
  assert.ok(out.ok);
  assert.equal(new DataView(out.output.buffer).getUint32(0, true), 9, "nwritten");
  assert.equal(pool.inlineJobs, before + 1);
  assert.deepEqual(logs.map(([level, message]) => [level, message]), [
    ["info", "hello"],
    ["info", "wor"],
  ]);
  for (const [, , fields] of logs) {
    assert.equal(fields.runnable, "wasi_probe");
    assert.equal(fields.requestId, "req-7");
    assert.ok(Number.isInteger(fields.ident) && fields.ident! >= 0, `ident ${fields.ident}`);
  }
  assert.equal(logs[0]![2].ident, logs[1]![2].ident, "one job, one ident");
});

Deno.test("inline jobs start from a clean state, after a trap too", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  using counter = await load(COUNTER_FILE, "counter", { pool });
  await warmLane(pool, hello);

  const before = pool.inlineJobs;
  for (let i = 0; i < 5; i++) assert.equal(output(await run(counter, "count")), "1,1");
  const batch = await Promise.all(Array.from({ length: 10 }, () => run(counter, "count")));
  for (const result of batch) assert.equal(output(result), "1,1");
  // A trap within the budget is the job's answer, as a worker gives it: no second try.
  assert.deepEqual(await run(counter, "T"), {
    ok: false,
    code: 500,
    message: 'runnable "counter" trapped: RuntimeError: unreachable',
  });
  assert.equal(output(await run(counter, "G")), "1,1");
  assert.equal(output(await run(counter, "count")), "1,1");
  assert.equal(output(await run(counter, "?")), "clean");
  // Each of them, unless the thread stalled past the budget (a job then goes to a worker).
  assert.ok(pool.inlineJobs > before, `${pool.inlineJobs - before} of 19 jobs ran inline`);
});

Deno.test("close() after inline jobs stops the watchdog and refuses later jobs", async () => {
  const pool = new RunnablePool({ concurrency: 1 });
  const hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  await warmLane(pool, hello);
  const pending = [run(hello, "a"), run(hello, "b")];
  pool.close();
  // Submitted before close() in the same turn: they were still queued.
  for (const job of pending) await assert.rejects(job, { message: "the runnable pool was closed" });
  await assert.rejects(run(hello, "late"), { message: "the runnable pool was closed" });
  hello.close();
  // The test's sanitizers check that no worker, the watchdog included, is left running.
});

Deno.test("a closed runnable's inline instance is dropped, its pool's lane goes on", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  await warmLane(pool, hello);
  const counter = await load(COUNTER_FILE, "counter", { pool });
  assert.equal(output(await run(counter, "count")), "1,1");
  counter.close();
  await assert.rejects(run(counter, "count"), { message: 'runnable "counter" is closed' });
  const before = pool.inlineJobs;
  assert.equal(output(await run(hello, "after")), "hello, after");
  assert.equal(pool.inlineJobs, before + 1);
});
