// Tests of the Wasm host (src/wasm/). Needs --allow-read and --allow-net=127.0.0.1 (fetch_url's
// test server); one test also uses --allow-run (it is skipped without it). The modules: runnables/helloworld-rs/helloworld-rs.wasm (Rust, built by
// runnables/build.sh) and tests/wasm/*.wasm (from the .wat beside them, by tests/wasm/build.sh).

import assert from "node:assert/strict";
import { Cancellation } from "../src/invocation/mod.ts";
import {
  type JobCancellation,
  loadRunnables,
  type RequestInfo,
  Runnable,
  RunnableCache,
  RunnableError,
  type RunnableLogFields,
  type RunnableLogLevel,
  type RunnableOptions,
  RunnablePool,
  type RunResult,
} from "../src/wasm/mod.ts";
import { HELLO_FILE, load, REPO as repo, testModule } from "./_wasm_modules.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PROBE_FILE = testModule("abi_probe");
const MORE_FILE = testModule("abi_more");
const WASI_FILE = testModule("wasi_probe");
const FETCH_FILE = testModule("fetch_probe");

function probe(options?: RunnableOptions): Promise<Runnable> {
  return load(PROBE_FILE, "abi_probe", options);
}

function output(result: RunResult): string {
  assert.ok(result.ok, `expected a result, got ${JSON.stringify(result)}`);
  return decoder.decode(result.output);
}

interface Logged {
  level: RunnableLogLevel;
  message: string;
  fields: RunnableLogFields;
}

/** A log option that records, and what it recorded. */
function recorder(): { logs: Logged[]; log: RunnableOptions["log"] } {
  const logs: Logged[] = [];
  return { logs, log: (level, message, fields) => logs.push({ level, message, fields }) };
}

function isIdent(value: unknown): boolean {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0x7fffffff;
}

function run(runnable: Runnable, input: string, request?: RequestInfo): Promise<RunResult> {
  return runnable.run(encoder.encode(input), request);
}

const REQUEST: RequestInfo = {
  method: "POST",
  url: "/users/7?verbose=yes&x=1",
  id: "req-42",
  body: encoder.encode('{"name":"Ada","age":36}'),
  headers: { "content-type": "text/plain", "x-trace": "abc" },
  params: { id: "7" },
  state: { greeting: encoder.encode("hi there") },
};

Deno.test("helloworld-rs built from this repo answers hello, my friend", async () => {
  const { logs, log } = recorder();
  using hello = await load(HELLO_FILE, "helloworld-rs", { log });
  assert.equal(output(await run(hello, "my friend")), "hello, my friend");
  assert.equal(output(await run(hello, "")), "hello, ");
  assert.deepEqual(hello.unsupportedImports, []);
  assert.equal(logs.length, 2);
  const [{ level, message, fields }] = logs as [Logged];
  assert.deepEqual([level, message, fields.runnable, fields.requestId], [
    "debug",
    "saying hello",
    "helloworld-rs",
    undefined,
  ]);
  assert.ok(isIdent(fields.ident), `ident ${fields.ident}`);
  assert.notEqual(logs[1]!.fields.ident, fields.ident, "each job has its own ident");
});

Deno.test("Runnable reports the module's errors, traps and host refusals as failed results", async (t) => {
  using runnable = await probe();

  await t.step("return_error surfaces its code and message", async () => {
    assert.deepEqual(await run(runnable, "EI'm a teapot"), {
      ok: false,
      code: 418,
      message: "I'm a teapot",
    });
  });

  await t.step("a trap is an error of its own, naming the runnable and the trap", async () => {
    assert.deepEqual(await run(runnable, "T"), {
      ok: false,
      code: 500,
      message: 'runnable "abi_probe" trapped: RuntimeError: unreachable',
    });
  });

  await t.step("a trap after return_error reports the module's error", async () => {
    assert.deepEqual(await run(runnable, "X"), { ok: false, code: 422, message: "before trap" });
  });

  await t.step(
    "graphql_query, get_static_file, request_set_field and db_exec refuse pointers outside memory",
    async () => {
      assert.deepEqual(runnable.unsupportedImports, []);
      const cases: [string, string][] = [
        ["U", "graphql_query passed a pointer outside its memory: 64 bytes at 65530"],
        ["V", "get_static_file passed a pointer outside its memory: 8 bytes at 4294967280"],
        ["Q", "request_set_field passed a pointer outside its memory: -1 bytes at 0"],
        ["D", "db_exec passed a pointer outside its memory: 2147483647 bytes at 0"],
      ];
      for (const [input, message] of cases) {
        assert.deepEqual(await run(runnable, input), {
          ok: false,
          code: 500,
          message: `runnable "abi_probe": ${message}, in a 65536-byte memory`,
        });
      }
    },
  );

  await t.step("a job that returns nothing answers an empty output", async () => {
    assert.equal(output(await run(runnable, "N")), "");
  });

  await t.step("the instance still serves jobs after all of that", async () => {
    assert.equal(output(await run(runnable, "still here")), "still here");
  });
});

Deno.test("every job starts from the state after initialisation, whatever the last one did", async (t) => {
  // One worker: every job meets the instance the previous job left.
  using counter = await load(testModule("counter"), "counter", {
    concurrency: 1,
    maxMemoryPages: 4,
  });

  await t.step("counts in memory and in a private global restart at 1 on every job", async () => {
    for (let i = 0; i < 5; i++) assert.equal(output(await run(counter, "count")), "1,1");
  });

  await t.step("jobs of one batch too", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => run(counter, "count")));
    for (const result of results) assert.equal(output(result), "1,1");
  });

  await t.step("after a job that trapped", async () => {
    assert.deepEqual(await run(counter, "T"), {
      ok: false,
      code: 500,
      message: 'runnable "counter" trapped: RuntimeError: unreachable',
    });
    assert.equal(output(await run(counter, "count")), "1,1");
  });

  await t.step("after a job that grew memory, with the memory back at its size", async () => {
    assert.equal(output(await run(counter, "G")), "1,1");
    assert.equal(output(await run(counter, "count")), "1,1");
    assert.equal(output(await run(counter, "P")), "1");
    const [grew, trapped, after] = await Promise.all([
      run(counter, "G"),
      run(counter, "T"),
      run(counter, "count"),
    ]);
    assert.equal(output(grew), "1,1");
    assert.ok(!trapped.ok);
    assert.equal(output(after), "1,1");
  });

  await t.step(
    "after writes by memory.fill, memory.copy, stores across chunks, in grown pages",
    async () => {
      assert.equal(output(await run(counter, "?")), "clean");
      for (const op of ["F", "S", "K", "W"]) {
        assert.equal(output(await run(counter, op)), "1,1");
        assert.equal(output(await run(counter, "?")), "clean", `after ${op}`);
      }
      const batch = await Promise.all(
        ["F", "?", "S", "?", "K", "?", "W", "?"].map((op) => run(counter, op)),
      );
      assert.deepEqual(batch.map(output), [
        "1,1",
        "clean",
        "1,1",
        "clean",
        "1,1",
        "clean",
        "1,1",
        "clean",
      ]);
    },
  );

  await t.step("after a job that hit its time limit", async () => {
    using pool = new RunnablePool({ concurrency: 1 });
    using looping = await probe({ pool, timeoutMs: 50 });
    using counted = await load(testModule("counter"), "counter", { pool });
    const [loop, after] = await Promise.all([run(looping, "L"), run(counted, "count")]);
    assert.ok(!loop.ok && loop.message.includes("time limit"));
    assert.equal(output(after), "1,1");
    assert.equal(output(await run(looping, "still here")), "still here");
  });
});

Deno.test("a module whose writes are not tracked is restored whole, also after it grew", async () => {
  using counter = await load(testModule("counter_simd"), "counter_simd", {
    concurrency: 1,
    maxMemoryPages: 64,
  });
  for (const op of ["x", "x", "T", "x", "G", "x", "H", "x", "G", "x"]) {
    const result = await run(counter, op);
    if (op === "T") assert.ok(!result.ok);
    else assert.equal(output(result), "1,1", `job ${op}`);
  }
  const results = await Promise.all(["G", "x", "H", "T", "x"].map((op) => run(counter, op)));
  assert.deepEqual(results.map((r) => r.ok ? decoder.decode(r.output) : "trap"), [
    "1,1",
    "1,1",
    "1,1",
    "trap",
    "1,1",
  ]);
});

Deno.test("a module that drops a data segment gets a fresh instance for every job", async () => {
  using counter = await load(testModule("counter_drop"), "counter_drop", {
    concurrency: 1,
  });
  for (let i = 0; i < 3; i++) assert.equal(output(await run(counter, "x")), "count 1,1");
  const results = await Promise.all(Array.from({ length: 10 }, () => run(counter, "x")));
  for (const result of results) assert.equal(output(result), "count 1,1");
});

Deno.test("Runnable.run copies its input: the caller may overwrite it at once, and jobs of one turn keep their own", async () => {
  using hello = await load(HELLO_FILE, "helloworld-rs");
  const inputs = Array.from({ length: 20 }, (_, i) => encoder.encode(`friend ${i}`));
  // Submitted in one turn: they run later, after the caller has overwritten every input.
  const jobs = inputs.map((input) => hello.run(input));
  for (const input of inputs) input.fill(0x3f);
  const answers = (await Promise.all(jobs)).map(output);
  assert.deepEqual(answers, inputs.map((_, i) => `hello, friend ${i}`));
  // Inputs above the small-copy size are copied too.
  const large = encoder.encode("x".repeat(5000));
  const job = hello.run(large);
  large.fill(0x3f);
  assert.equal(output(await job), `hello, ${"x".repeat(5000)}`);
});

Deno.test("helloworld-rs answers every job of a long run from a clean state", async () => {
  using hello = await load(HELLO_FILE, "helloworld-rs", { concurrency: 1 });
  for (let i = 0; i < 50; i++) assert.equal(output(await run(hello, `${i}`)), `hello, ${i}`);
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => run(hello, `${i}`)));
  results.forEach((result, i) => assert.equal(output(result), `hello, ${i}`));
});

Deno.test("Runnable ignores a result sent for another job's ident", async () => {
  const { logs, log } = recorder();
  using runnable = await probe({ log });
  assert.equal(output(await run(runnable, "Wsomeone else's")), "");
  assert.equal(logs.length, 1);
  assert.equal(logs[0]!.level, "warn");
  assert.match(
    logs[0]!.message,
    /env\.return_result called with ident \d+, not the running job's; ignored/,
  );
});

Deno.test("Runnable passes log_msg calls to the log option with their level and request id", async () => {
  const { logs, log } = recorder();
  using runnable = await probe({ log });
  assert.equal(output(await run(runnable, "lcareful now", REQUEST)), "lcareful now");
  assert.equal(logs.length, 1);
  const [{ level, message, fields }] = logs as [Logged];
  assert.deepEqual([level, message, fields.runnable, fields.requestId], [
    "warn",
    "careful now",
    "abi_probe",
    "req-42",
  ]);
  assert.ok(isIdent(fields.ident));
});

Deno.test("request_get_field reads the job's request", async (t) => {
  using runnable = await probe();
  const cases: [string, string][] = [
    ["R0method", "POST"],
    ["R0url", "/users/7?verbose=yes&x=1"],
    ["R0id", "req-42"],
    ["R0body", '{"name":"Ada","age":36}'],
    ["R0unknown", ""],
    ["R1name", "Ada"],
    ["R1missing", ""],
    ["R2content-type", "text/plain"],
    ["R2X-Trace", "abc"],
    ["R2missing", ""],
    ["R3id", "7"],
    ["R3missing", ""],
    ["R4greeting", "hi there"],
    ["R4missing", ""],
    ["R5verbose", "yes"],
    ["R5missing", ""],
  ];
  for (const [input, expected] of cases) {
    await t.step(
      `field ${input[1]} "${input.slice(2)}" reads ${JSON.stringify(expected)}`,
      async () => {
        assert.equal(output(await run(runnable, input, REQUEST)), expected);
      },
    );
  }

  await t.step("an own-property check keeps prototype names missing", async () => {
    assert.equal(output(await run(runnable, "R3__proto__", REQUEST)), "");
    assert.equal(output(await run(runnable, "R3toString", REQUEST)), "");
  });

  await t.step("errors come back as a negative size and a message", async () => {
    assert.deepEqual(await run(runnable, "R1age", REQUEST), {
      ok: false,
      code: 400,
      message: 'request body field "age" is not a string',
    });
    assert.deepEqual(await run(runnable, "R9x", REQUEST), {
      ok: false,
      code: 400,
      message: "invalid request field type 9",
    });
    assert.deepEqual(await run(runnable, "R0method"), {
      ok: false,
      code: 400,
      message: "no request is attached to this job",
    });
  });
});

Deno.test("Runnable stops a job at its time limit and keeps serving", async (t) => {
  using pool = new RunnablePool({ concurrency: 2 });
  using runnable = await probe({ timeoutMs: 200, pool });

  await t.step("an infinite loop hits the time limit, on time", async () => {
    const started = performance.now();
    assert.deepEqual(await run(runnable, "L"), {
      ok: false,
      code: 504,
      message: 'runnable "abi_probe" exceeded its time limit of 200 ms',
    });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 190 && elapsed < 1000, `answered after ${elapsed} ms`);
  });

  await t.step("the next job works", async () => {
    assert.equal(output(await run(runnable, "next")), "next");
  });

  await t.step("two looping jobs run side by side", async () => {
    const started = performance.now();
    const results = await Promise.all([run(runnable, "L"), run(runnable, "L")]);
    const elapsed = performance.now() - started;
    for (const result of results) assert.ok(!result.ok && result.message.includes("time limit"));
    assert.ok(elapsed < 390, `two 200 ms jobs took ${elapsed} ms with 2 workers`);
    assert.equal(output(await run(runnable, "again")), "again");
  });

  await t.step("a start function that never returns hits the time limit too", async () => {
    using looping = await load(testModule("start_loop"), "start_loop", {
      timeoutMs: 100,
      pool,
    });
    assert.deepEqual(await run(looping, "x"), {
      ok: false,
      code: 504,
      message: 'runnable "start_loop" exceeded its time limit of 100 ms',
    });
    assert.equal(output(await run(runnable, "still fine")), "still fine");
  });
});

Deno.test("Runnable.run rejects with the signal's reason when aborted, and stops the job", async () => {
  using runnable = await probe({ concurrency: 1 });
  await assert.rejects(
    runnable.run(encoder.encode("x"), undefined, { signal: AbortSignal.abort() }),
    { name: "AbortError" },
  );

  const running = new AbortController();
  const waiting = new AbortController();
  const started = performance.now();
  const loop = runnable.run(encoder.encode("L"), undefined, { signal: running.signal });
  const queued = runnable.run(encoder.encode("queued"), undefined, { signal: waiting.signal });
  setTimeout(() => waiting.abort(new Error("not needed any more")), 20);
  setTimeout(() => running.abort(new Error("client went away")), 50);
  await assert.rejects(queued, { message: "not needed any more" });
  await assert.rejects(loop, { message: "client went away" });
  // The one worker is free again long before the 10 s time limit.
  assert.equal(output(await run(runnable, "after")), "after");
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 1000, `took ${elapsed} ms`);
});

Deno.test("Runnable.run rejects with a cancellation's reason, stops the job, and lets go of it once settled", async () => {
  using runnable = await probe({ concurrency: 1 });
  const cancelledBefore = new Cancellation();
  cancelledBefore.cancel(new Error("cancelled before it was submitted"));
  await assert.rejects(
    runnable.run(encoder.encode("x"), undefined, { cancellation: cancelledBefore }),
    { message: "cancelled before it was submitted" },
  );

  const running = new Cancellation();
  const waiting = new Cancellation();
  const started = performance.now();
  const loop = runnable.run(encoder.encode("L"), undefined, { cancellation: running });
  const queued = runnable.run(encoder.encode("queued"), undefined, { cancellation: waiting });
  setTimeout(() => waiting.cancel(new Error("not needed any more")), 20);
  setTimeout(() => running.cancel(new Error("deadline passed")), 50);
  await assert.rejects(queued, { message: "not needed any more" });
  await assert.rejects(loop, { message: "deadline passed" });
  // The one worker is free again long before the 10 s time limit.
  assert.equal(output(await run(runnable, "after")), "after");
  assert.ok(performance.now() - started < 1000);

  // A job sets its action while it waits and clears it when it settles: nothing is left to
  // call on a cancellation that outlives the job.
  const calls: string[] = [];
  const recording: JobCancellation = {
    reason: undefined,
    onCancel: (action) => void calls.push(action ? "set" : "cleared"),
  };
  assert.equal(
    output(await runnable.run(encoder.encode("done"), undefined, { cancellation: recording })),
    "done",
  );
  assert.deepEqual(calls, ["set", "cleared"]);
  assert.equal(output(await run(runnable, "still fine")), "still fine");
});

Deno.test("Runnable refuses a module that grows past maxMemoryPages", async (t) => {
  await t.step("memory.grow past the limit fails inside the module", async () => {
    using runnable = await probe({ maxMemoryPages: 64 });
    assert.deepEqual(await run(runnable, "G"), {
      ok: false,
      code: 507,
      message: "memory.grow refused",
    });
  });

  await t.step("within the limit it grows", async () => {
    using runnable = await probe({ maxMemoryPages: 1024 });
    assert.equal(output(await run(runnable, "G")), "grew");
  });

  await t.step("a module that starts above the limit is refused at load", async () => {
    // helloworld-rs starts with 17 pages (1 MiB of stack and its data).
    await assert.rejects(load(HELLO_FILE, "helloworld-rs", { maxMemoryPages: 16 }), {
      name: "RunnableError",
      message:
        'runnable "helloworld-rs" cannot be sandboxed: memory 0 starts at 17 pages (1.0625 MiB), ' +
        "more than the limit of 16 pages (1 MiB); raise maxMemoryPages or shrink the module",
    });
  });
});

Deno.test("Runnable.load refuses what is not a runnable, with a clear error", async (t) => {
  await t.step("a module missing run_e", async () => {
    await assert.rejects(
      load(testModule("missing_run_e"), "no-entry"),
      (error) => {
        assert.ok(error instanceof RunnableError);
        assert.equal(error.runnable, "no-entry");
        assert.equal(
          error.message,
          'runnable "no-entry" does not export "run_e" (function); a runnable must export allocate, ' +
            "deallocate, run_e and memory (Suborbital's runnable ABI)",
        );
        return true;
      },
    );
  });

  await t.step("bytes that are not WebAssembly", async () => {
    await assert.rejects(Runnable.load("junk", encoder.encode("hello")), {
      name: "RunnableError",
      message: /^runnable "junk" is not a valid WebAssembly module: CompileError: /,
    });
  });

  await t.step("caller mistakes", async () => {
    const bytes = await Deno.readFile(HELLO_FILE);
    await assert.rejects(Runnable.load("", bytes), TypeError);
    await assert.rejects(Runnable.load("x", bytes, { timeoutMs: 0 }), RangeError);
    await assert.rejects(Runnable.load("x", bytes, { maxMemoryPages: 65537 }), RangeError);
    assert.throws(() => new RunnablePool({ concurrency: 0 }), RangeError);
    using hello = await Runnable.load("x", bytes);
    await assert.rejects(hello.run("text" as unknown as Uint8Array), TypeError);
  });
});

Deno.test("a pool runs 100 concurrent jobs, each with its own result", async (t) => {
  for (const concurrency of [1, 2, 4]) {
    await t.step(`with ${concurrency} worker(s)`, async () => {
      using pool = new RunnablePool({ concurrency });
      using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
      using echo = await probe({ pool });
      const jobs = Array.from(
        { length: 100 },
        (_, i) =>
          i % 2 === 0
            ? run(hello, `friend ${i}`)
            : run(echo, `R3id`, { ...REQUEST, params: { id: `${i}` } }),
      );
      const results = (await Promise.all(jobs)).map(output);
      results.forEach((result, i) =>
        assert.equal(result, i % 2 === 0 ? `hello, friend ${i}` : `${i}`)
      );
    });
  }
});

Deno.test("a pool carries inputs and outputs too large for its shared channel by message", async () => {
  using pool = new RunnablePool({ concurrency: 2 });
  using echo = await probe({ pool });
  const sizes = [256 * 1024, 300_000, 1024 * 1024];
  const large = sizes.map((size) => {
    const bytes = Uint8Array.from({ length: size }, (_, i) => (i * 131 + (i >> 8)) & 0xff);
    bytes[0] = 0x78; // "x": echo
    return bytes;
  });
  const results = await Promise.all([
    ...large.map((input) => echo.run(input)),
    ...Array.from({ length: 20 }, (_, i) => run(echo, `small ${i}`)),
  ]);
  large.forEach((input, i) => {
    const result = results[i]!;
    assert.ok(result.ok, `${input.length} bytes: ${JSON.stringify(result).slice(0, 200)}`);
    assert.deepEqual(result.output, input);
  });
  results.slice(large.length).forEach((result, i) => assert.equal(output(result), `small ${i}`));
  for (const result of results) {
    // Each output is the caller's own: never a view of shared memory.
    assert.ok(result.ok && result.output.buffer instanceof ArrayBuffer);
    assert.equal(result.output.byteOffset, 0);
  }
});

Deno.test("jobs handed to a worker behind a looping job run on another worker", async () => {
  using pool = new RunnablePool({ concurrency: 2 });
  using runnable = await probe({ timeoutMs: 1000, pool });
  const started = performance.now();
  // Submitted together: the first worker's batch holds the loop and the job after it.
  const loop = run(runnable, "L");
  const others = [run(runnable, "first"), run(runnable, "second"), run(runnable, "third")];
  assert.deepEqual((await Promise.all(others)).map(output), ["first", "second", "third"]);
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 500, `the jobs behind the loop took ${elapsed} ms`);
  const looped = await loop;
  assert.ok(!looped.ok && looped.message.includes("time limit"));
});

Deno.test("a looping job later in a worker's batch hits its time limit on time", async () => {
  using runnable = await probe({ concurrency: 1, timeoutMs: 200 });
  // A worker that is up takes all three jobs in one batch.
  assert.equal(output(await run(runnable, "warm")), "warm");
  const started = performance.now();
  const [before, loop, after] = await Promise.all([
    run(runnable, "before"),
    run(runnable, "L"),
    run(runnable, "after"),
  ]);
  const elapsed = performance.now() - started;
  assert.equal(output(before), "before");
  assert.deepEqual(loop, {
    ok: false,
    code: 504,
    message: 'runnable "abi_probe" exceeded its time limit of 200 ms',
  });
  assert.equal(output(after), "after");
  assert.ok(elapsed >= 190 && elapsed < 1000, `answered after ${elapsed} ms`);
});

Deno.test("a job aborted while it waits in a worker's batch never runs", async () => {
  const { logs, log } = recorder();
  using runnable = await probe({ concurrency: 1, log });
  // A worker that is up takes both jobs in one batch at once.
  assert.equal(output(await run(runnable, "warm")), "warm");
  const loopAbort = new AbortController();
  const waitAbort = new AbortController();
  const loop = runnable.run(encoder.encode("L"), undefined, { signal: loopAbort.signal });
  const waiting = runnable.run(encoder.encode("lnot me"), undefined, { signal: waitAbort.signal });
  await new Promise((resolve) => setTimeout(resolve, 1));
  const started = performance.now();
  waitAbort.abort(new Error("changed my mind"));
  await assert.rejects(waiting, { message: "changed my mind" });
  assert.ok(performance.now() - started < 50);
  loopAbort.abort(new Error("enough"));
  await assert.rejects(loop, { message: "enough" });
  assert.equal(output(await run(runnable, "lafter")), "lafter");
  assert.deepEqual(logs.map((l) => l.message), ["after"]);
});

Deno.test("request_get_field reads the body when the request's body is the input", async () => {
  using runnable = await probe();
  const input = encoder.encode("R0body");
  assert.equal(output(await runnable.run(input, { ...REQUEST, body: input })), "R0body");
  const other = encoder.encode("R0body");
  assert.equal(
    output(await runnable.run(other, REQUEST)),
    '{"name":"Ada","age":36}',
    "a body that is not the input is its own",
  );
});

Deno.test("a runnable closed while its jobs are in flight still answers them", async () => {
  using pool = new RunnablePool({ concurrency: 2 });
  const hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  const jobs = Array.from({ length: 40 }, (_, i) => run(hello, `${i}`));
  await new Promise((resolve) => setTimeout(resolve, 0));
  hello.close();
  const more = Array.from({ length: 40 }, (_, i) => run(hello, `${i}`));
  for (const job of more) {
    await assert.rejects(job, { message: 'runnable "helloworld-rs" is closed' });
  }
  (await Promise.all(jobs)).forEach((result, i) => assert.equal(output(result), `hello, ${i}`));
  using again = await load(HELLO_FILE, "helloworld-rs", { pool });
  assert.equal(output(await run(again, "again")), "hello, again");
});

Deno.test("a pool answers every job of a mixed load with aborts, errors, traps and logs", async () => {
  const { logs, log } = recorder();
  using pool = new RunnablePool({ concurrency: 2 });
  using hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  using echo = await probe({ pool, log });
  // A fixed sequence (a linear congruential generator) so that a failure can be replayed.
  let seed = 12345;
  const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const checks: Promise<void>[] = [];
  const logged: string[] = [];
  const mayLog = new Set<string>();
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 25; i++) {
      const tag = `${round}.${i} ünïcødé ✓`;
      const kind = next(6);
      const abort = next(5) === 0 ? new AbortController() : undefined;
      const signal = abort?.signal;
      let job: Promise<RunResult>;
      let expect: (result: RunResult) => void;
      if (kind === 0) {
        job = hello.run(encoder.encode(tag), undefined, { signal });
        expect = (result) => assert.equal(output(result), `hello, ${tag}`);
      } else if (kind === 1) {
        job = echo.run(encoder.encode(`E${tag}`), undefined, { signal });
        expect = (result) => assert.deepEqual(result, { ok: false, code: 418, message: tag });
      } else if (kind === 2) {
        job = echo.run(encoder.encode("T"), undefined, { signal });
        expect = (result) => assert.ok(!result.ok && result.message.includes("trapped"));
      } else if (kind === 3) {
        job = echo.run(encoder.encode("R3id"), { ...REQUEST, params: { id: tag } }, { signal });
        expect = (result) => assert.equal(output(result), tag);
      } else if (kind === 4) {
        job = echo.run(encoder.encode(`l${tag}`), REQUEST, { signal });
        mayLog.add(tag);
        expect = (result) => {
          assert.equal(output(result), `l${tag}`);
          logged.push(tag);
        };
      } else {
        job = echo.run(encoder.encode(tag), undefined, { signal });
        expect = (result) => assert.equal(output(result), tag);
      }
      if (abort) setTimeout(() => abort.abort(new Error(`aborted ${tag}`)), next(3));
      checks.push(job.then(expect, (error) => {
        // An aborted job rejects, unless it was answered first.
        assert.ok(abort, `${tag}: ${error}`);
        assert.equal(error.message, `aborted ${tag}`);
      }));
    }
    if (next(2) === 0) await new Promise((resolve) => setTimeout(resolve, next(3)));
  }
  await Promise.all(checks);
  // Every answered job logged; an aborted one may have run (and logged) before the abort.
  const messages = new Set(logs.map((l) => l.message));
  assert.equal(messages.size, logs.length);
  for (const tag of logged) assert.ok(messages.has(tag), `no log of ${tag}`);
  for (const message of messages) assert.ok(mayLog.has(message), `unexpected log ${message}`);
  for (const { level } of logs) assert.equal(level, "warn");
  for (const { fields } of logs) assert.equal(fields.requestId, "req-42");
});

Deno.test("a closed runnable or pool refuses jobs", async () => {
  const pool = new RunnablePool({ concurrency: 1 });
  const hello = await load(HELLO_FILE, "helloworld-rs", { pool });
  const other = await load(HELLO_FILE, "other", { pool });
  hello.close();
  await assert.rejects(run(hello, "x"), { message: 'runnable "helloworld-rs" is closed' });
  assert.equal(output(await run(other, "pool")), "hello, pool", "the pool outlives its runnables");
  const pending = [run(other, "a"), run(other, "b")];
  pool.close();
  for (const job of pending) await assert.rejects(job, { message: "the runnable pool was closed" });
  await assert.rejects(run(other, "late"), { message: "the runnable pool was closed" });
  other.close();
});

Deno.test("loadRunnables loads each dir/<name>/<name>.wasm and names a bad file", async (t) => {
  await t.step("the repo's runnables", async () => {
    const runnables = await loadRunnables(new URL("runnables", repo).pathname, { concurrency: 1 });
    try {
      const hello = runnables.get("helloworld-rs");
      assert.ok(hello);
      assert.equal(output(await run(hello, "my friend")), "hello, my friend");
    } finally {
      for (const runnable of runnables.values()) runnable.close();
    }
  });

  await t.step("dir/<name>.wasm files, invalid ones named", async () => {
    const dir = new URL("tests/wasm/broken", repo).pathname;
    await assert.rejects(loadRunnables(dir), (error) => {
      assert.ok(error instanceof RunnableError);
      assert.equal(error.file, `${dir}/broken.wasm`);
      assert.match(
        error.message,
        /broken\.wasm: runnable "broken" is not a valid WebAssembly module/,
      );
      return true;
    });
  });

  await t.step("a missing folder", async () => {
    await assert.rejects(loadRunnables("/nonexistent/runnables"), Deno.errors.NotFound);
  });
});

const runGranted = Deno.permissions.querySync({ name: "run" }).state === "granted";

Deno.test({
  name: "workers run without any permission when the unstable worker options are on",
  ignore: !runGranted,
  async fn() {
    const mod = new URL("src/wasm/mod.ts", repo).href;
    const code = `
      import { Runnable } from ${JSON.stringify(mod)};
      const bytes = await Deno.readFile(${JSON.stringify(HELLO_FILE.pathname)});
      using hello = await Runnable.load("helloworld-rs", bytes, { workerPermissions: "none" });
      const result = await hello.run(new TextEncoder().encode("sandbox"));
      console.log(result.ok ? new TextDecoder().decode(result.output) : result.message);
    `;
    const { code: status, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "--unstable-worker-options",
        "--no-config",
        `--allow-read=${repo.pathname}`,
        code,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(status, 0, decoder.decode(stderr));
    assert.equal(decoder.decode(stdout).trim(), "hello, sandbox");
  },
});

Deno.test("the _swift names and return_abort of the ABI", async (t) => {
  const { logs, log } = recorder();
  using runnable = await load(MORE_FILE, "abi_more", { log });

  await t.step("every host function is supported, _swift names included", () => {
    assert.deepEqual(runnable.unsupportedImports, []);
  });

  await t.step("return_result_swift, return_error_swift and log_msg_swift", async () => {
    assert.equal(output(await run(runnable, "Hello swift")), "Hello swift");
    assert.deepEqual(await run(runnable, "e"), { ok: false, code: 409, message: "swift error" });
    assert.deepEqual(logs.map((l) => [l.level, l.message]), [["info", "swift log"]]);
  });

  await t.step(
    "return_abort fails the job with AssemblyScript's message and position",
    async () => {
      assert.deepEqual(await run(runnable, "a"), {
        ok: false,
        code: 500,
        message: "abort: boom at main.ts:12:5",
      });
    },
  );

  await t.step(
    "a pointer outside memory fails the job, and the runnable keeps serving",
    async () => {
      for (const [input, fn] of [["p", "cache_get"], ["P", "log_msg"]]) {
        const result = await run(runnable, input!);
        assert.ok(!result.ok, input);
        assert.equal(result.code, 500);
        assert.match(
          result.message,
          new RegExp(`^runnable "abi_more": ${fn} passed a pointer outside its memory`),
        );
      }
      assert.equal(output(await run(runnable, "Keeps serving")), "Keeps serving");
    },
  );

  await t.step("add_ffi_var stores a variable", async () => {
    assert.equal(output(await run(runnable, "v4namevalue")), "ok");
  });
});

Deno.test("cache_set and cache_get share one cache across workers, with a TTL", async (t) => {
  let now = 1_000_000;
  const cache = new RunnableCache({ maxEntries: 3, now: () => now });
  using pool = new RunnablePool({ concurrency: 2, cache });
  using runnable = await load(MORE_FILE, "abi_more", { pool });

  await t.step("a value set by one job is read by others, on every worker", async () => {
    assert.equal(output(await run(runnable, "s05greethello")), "ok");
    const reads = await Promise.all(Array.from({ length: 20 }, () => run(runnable, "ggreet")));
    for (const read of reads) assert.equal(output(read), "hello");
    assert.equal(output(await run(runnable, "Ggreet")), "hello", "cache_get_swift");
    assert.equal(decoder.decode(cache.get("greet")), "hello");
  });

  await t.step("a missing key is an error result", async () => {
    assert.deepEqual(await run(runnable, "gnope"), {
      ok: false,
      code: 404,
      message: "key not found",
    });
  });

  await t.step("an entry expires after its TTL", async () => {
    assert.equal(output(await run(runnable, "s23ttlshort")), "ok");
    now += 1999;
    assert.equal(output(await run(runnable, "gttl")), "short");
    now += 1;
    assert.deepEqual(await run(runnable, "gttl"), {
      ok: false,
      code: 404,
      message: "key not found",
    });
  });

  await t.step("the cache keeps its bounds, evicting the oldest entry", async () => {
    for (const key of ["k1", "k2", "k3", "k4"]) {
      assert.equal(output(await run(runnable, `s02${key}v`)), "ok");
    }
    assert.equal(cache.size, 3);
    assert.equal(cache.get("greet"), undefined);
    assert.equal(decoder.decode(cache.get("k4")), "v");
  });
});

Deno.test("RunnableCache bounds its bytes and refuses an entry larger than all of them", () => {
  const cache = new RunnableCache({ maxBytes: 9 });
  cache.set("a", new Uint8Array(4), 0);
  cache.set("b", new Uint8Array(4), 0);
  assert.equal(cache.get("a"), undefined, "evicted for b");
  assert.throws(
    () => cache.set("c", new Uint8Array(9), 0),
    new RangeError("the entry of 10 bytes is larger than the cache (maxBytes 9)"),
  );
  assert.equal(cache.get("b")?.length, 4);
  assert.throws(() => new RunnableCache({ maxEntries: 0 }), RangeError);
});

Deno.test("resp_set_header headers come back with the result", async () => {
  using runnable = await load(MORE_FILE, "abi_more");
  assert.deepEqual(await run(runnable, "h6x-songla"), {
    ok: true,
    output: encoder.encode("headers"),
    headers: { "x-song": "la", "x-runnable": "abi_more" },
  });
  assert.deepEqual(await run(runnable, "Quiet"), { ok: true, output: encoder.encode("Quiet") });
});

Deno.test("get_secret_value reads only the secrets it was given, and never logs them", async (t) => {
  const { logs, log } = recorder();
  using pool = new RunnablePool({ secrets: { "api-key": "s3cr3t" } });
  using runnable = await load(MORE_FILE, "abi_more", { pool, log });
  using own = await load(MORE_FILE, "abi_more_own", { pool, secrets: { token: "t0k" } });

  await t.step("an allowed name", async () => {
    assert.equal(output(await run(runnable, "Sapi-key")), "s3cr3t");
    assert.equal(output(await run(own, "Stoken")), "t0k");
  });

  await t.step("any other name is an error result", async () => {
    assert.deepEqual(await run(runnable, "SPATH"), {
      ok: false,
      code: 404,
      message: 'no secret named "PATH" is allowed for this runnable',
    });
    assert.equal(
      (await run(own, "Sapi-key")).ok,
      false,
      "a runnable's own secrets replace the pool's",
    );
    assert.equal((await run(runnable, "S__proto__")).ok, false);
  });

  await t.step("values are not logged", () => {
    assert.ok(logs.every((l) => !l.message.includes("s3cr3t")));
  });

  await t.step("secrets must be strings", () => {
    assert.throws(
      () => new RunnablePool({ secrets: { n: 1 as unknown as string } }),
      TypeError,
    );
  });
});

Deno.test("a module that imports all of wasi_snapshot_preview1 runs", async (t) => {
  const { logs, log } = recorder();
  using runnable = await load(WASI_FILE, "wasi_probe", { log });

  await t.step("every WASI function is provided", () => {
    assert.deepEqual(runnable.unsupportedImports, []);
  });

  await t.step("fd_write to fd 1 and 2 goes to the job's log, a line at a time", async () => {
    const out = await run(runnable, "ohello\nwor");
    assert.ok(out.ok);
    assert.equal(new DataView(out.output.buffer).getUint32(0, true), 9, "nwritten");
    await run(runnable, "Othread 'main' panicked at src/lib.rs:3:5:\noh no\n");
    assert.deepEqual(logs.map((l) => [l.level, l.message]), [
      ["info", "hello"],
      ["info", "wor"],
      ["error", "thread 'main' panicked at src/lib.rs:3:5:"],
      ["error", "oh no"],
    ]);
  });

  await t.step("proc_exit ends the job", async () => {
    assert.deepEqual(await run(runnable, "x0"), { ok: true, output: new Uint8Array(0) });
    assert.equal(output(await run(runnable, "X")), "before exit");
    assert.deepEqual(await run(runnable, "x3"), { ok: false, code: 500, message: "proc_exit(3)" });
  });

  await t.step("random_get fills with random bytes", async () => {
    const [a, b] = [output(await run(runnable, "r")), output(await run(runnable, "r"))];
    assert.notEqual(a, b);
  });

  await t.step("clock_time_get reads the realtime and monotonic clocks", async () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    for (const [input, errno] of [["c0", 0], ["c1", 0], ["c2", 28]] as const) {
      const result = await run(runnable, input);
      assert.ok(result.ok);
      const view = new DataView(result.output.buffer);
      assert.equal(view.getUint32(8, true), errno, input);
      if (input === "c0") assert.ok(view.getBigUint64(0, true) >= before - 1_000_000n);
      if (input === "c1") assert.ok(view.getBigUint64(0, true) > 0n);
    }
  });

  await t.step("args and environ are empty; the rest answers ENOSYS", async () => {
    const result = await run(runnable, "n");
    assert.ok(result.ok);
    assert.deepEqual([...result.output.subarray(0, 8)], [52, 52, 52, 52, 8, 0, 0, 8]);
    assert.deepEqual([...result.output.subarray(16, 32)], new Array(16).fill(0));
  });

  await t.step("a pointer outside memory fails the job; the runnable keeps serving", async () => {
    const result = await run(runnable, "b");
    assert.ok(!result.ok);
    assert.match(
      result.message,
      /wasi_snapshot_preview1\.fd_write passed a pointer outside its memory/,
    );
    assert.equal(output(await run(runnable, "fine")), "fine");
  });
});

/** What the fetch test server saw of one request. */
interface Seen {
  method: string;
  path: string;
  probe: string | null;
  body: string;
}

/** A server on 127.0.0.1, port 0, for fetch_url, and the requests it saw. */
function fetchServer(): { server: Deno.HttpServer<Deno.NetAddr>; seen: Seen[]; origin: string } {
  const seen: Seen[] = [];
  const server: Deno.HttpServer<Deno.NetAddr> = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
  }, async (request: Request): Promise<Response> => {
    const { pathname } = new URL(request.url);
    const body = await request.text();
    seen.push({
      method: request.method,
      path: pathname,
      probe: request.headers.get("x-probe"),
      body,
    });
    switch (pathname) {
      case "/hello":
        return new Response("hello");
      case "/echo":
        return new Response(`${request.method} ${request.headers.get("x-probe")} ${body}`);
      case "/teapot":
        return new Response("I'm a teapot", { status: 418 });
      case "/big":
        return new Response("x".repeat(1001));
      case "/stream":
        // No content-length: the limit is met while reading.
        return new Response(
          ReadableStream.from([encoder.encode("y".repeat(600)), encoder.encode("y".repeat(600))]),
        );
      case "/slow":
        await new Promise((resolve) => setTimeout(resolve, 400));
        return new Response("late");
      case "/redirect":
        return Response.redirect(new URL(`/hello`, `http://localhost:${server.addr.port}`), 302);
      case "/around":
        return Response.redirect(new URL("/hello", request.url), 303);
    }
    return new Response("not found", { status: 404 });
  });
  return { server, seen, origin: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("fetch_url reaches allowed hosts only, and answers the body or an error", async (t) => {
  const { server, seen, origin } = fetchServer();
  const host = new URL(origin).host;
  try {
    using pool = new RunnablePool({ allowedHosts: [host], fetchMaxBytes: 1000 });
    using runnable = await load(FETCH_FILE, "fetch_probe", { pool });

    await t.step("a GET answers the response body", async () => {
      assert.equal(output(await run(runnable, `0n${origin}/hello`)), "hello");
      assert.deepEqual(seen.pop(), { method: "GET", path: "/hello", probe: null, body: "" });
    });

    await t.step("a POST sends its body, and headers riding in the URL", async () => {
      const result = await run(runnable, `3n${origin}/echo::X-Probe:yes::X-Other:1\n{"a":1}`);
      assert.equal(output(result), 'POST yes {"a":1}');
      assert.deepEqual(seen.pop(), {
        method: "POST",
        path: "/echo",
        probe: "yes",
        body: '{"a":1}',
      });
      assert.equal(output(await run(runnable, `6n${origin}/echo\n`)), "DELETE null ");
      seen.pop();
    });

    await t.step("fetch_url_swift works the same", async () => {
      assert.equal(output(await run(runnable, `0s${origin}/hello`)), "hello");
      assert.equal(
        output(await run(runnable, `4s${origin}/echo::X-Probe:put\nput!`)),
        "PUT put put!",
      );
      seen.splice(0);
    });

    await t.step('a non-2xx response is an error "<status>: <body>"', async () => {
      assert.deepEqual(await run(runnable, `0n${origin}/teapot`), {
        ok: false,
        code: 400,
        message: "418: I'm a teapot",
      });
      seen.pop();
    });

    await t.step("a response over fetchMaxBytes is an error", async () => {
      for (const path of ["/big", "/stream"]) {
        const result = await run(runnable, `0n${origin}${path}`);
        assert.ok(!result.ok && /larger than the limit of 1000 bytes/.test(result.message), path);
      }
      seen.splice(0);
    });

    await t.step("a redirect to a host not allowed is refused", async () => {
      const result = await run(runnable, `0n${origin}/redirect`);
      assert.ok(!result.ok && /host "localhost:\d+" is not in allowedHosts/.test(result.message));
      assert.deepEqual(seen.splice(0).map((s) => s.path), ["/redirect"]);
      assert.equal(output(await run(runnable, `3n${origin}/around\nbody`)), "hello");
      assert.deepEqual(seen.splice(0).map((s) => [s.method, s.path]), [
        ["POST", "/around"],
        ["GET", "/hello"],
      ]);
    });

    await t.step("refused hosts and schemes never reach the network", async () => {
      using closed = await load(FETCH_FILE, "fetch_closed", { pool, allowedHosts: [] });
      using wild = await load(FETCH_FILE, "fetch_wild", {
        pool,
        allowedHosts: ["*", "*.localhost"],
      });
      const cases: [Runnable, string, RegExp][] = [
        [closed, `0n${origin}/hello`, /^host "127\.0\.0\.1:\d+" is not in allowedHosts/],
        [
          wild,
          `0n${origin}/hello`,
          /is a loopback or private address; only an exact allowedHosts entry/,
        ],
        [wild, `0nhttp://a.localhost:${server.addr.port}/hello`, /loopback or private address/],
        [wild, "0nhttp://localhost./", /loopback or private address/],
        [wild, "0nhttp://0x7f.1/", /loopback or private address/],
        [wild, "0nhttp://[::1]:1/", /loopback or private address/],
        [wild, "0nhttp://10.1.2.3/", /loopback or private address/],
        [wild, "0nhttp://[::ffff:192.168.0.1]/", /loopback or private address/],
        [runnable, "0nfile:///etc/passwd", /only http and https URLs can be fetched/],
        [runnable, "0nnot a url", /"not a url" is not an absolute URL/],
        [runnable, `9n${origin}/hello`, /unknown method 9/],
        [runnable, `0n${origin}/hello::broken`, /header "broken" in the URL is not "Name:Value"/],
      ];
      for (const [probe, input, expected] of cases) {
        const result = await run(probe, input);
        assert.ok(!result.ok && result.code === 400, `${input}: ${JSON.stringify(result)}`);
        assert.match(result.message, expected, input);
      }
      assert.deepEqual(seen, [], "the server saw no request");
    });

    await t.step("a fetch slower than fetchTimeoutMs is an error; the job goes on", async () => {
      using quick = await load(FETCH_FILE, "fetch_quick", {
        pool,
        allowedHosts: [host],
        fetchTimeoutMs: 100,
      });
      const result = await run(quick, `0n${origin}/slow`);
      assert.ok(
        !result.ok && /took longer than 100 ms/.test(result.message),
        JSON.stringify(result),
      );
      assert.equal(output(await run(quick, `0n${origin}/hello`)), "hello");
    });

    await t.step("a fetch never outlasts its job's time limit", async () => {
      using short = await load(FETCH_FILE, "fetch_short", {
        pool,
        allowedHosts: [host],
        timeoutMs: 150,
      });
      const result = await run(short, `0n${origin}/slow`);
      assert.ok(!result.ok, JSON.stringify(result));
      assert.match(result.message, /exceeded its time limit of 150 ms|took longer than/);
      assert.equal(output(await run(short, `0n${origin}/hello`)), "hello");
    });

    await t.step("a network failure is an error naming the origin", async () => {
      using down = await load(FETCH_FILE, "fetch_down", { pool, allowedHosts: ["127.0.0.1:1"] });
      const result = await run(down, "0nhttp://127.0.0.1:1/");
      assert.ok(!result.ok && result.code === 400, JSON.stringify(result));
      assert.match(result.message, /^fetching http:\/\/127\.0\.0\.1:1 failed: /);
    });

    await t.step("options are checked", () => {
      assert.throws(() => new RunnablePool({ allowedHosts: ["http://x"] }), TypeError);
      assert.throws(() => new RunnablePool({ fetchTimeoutMs: 0 }), RangeError);
      assert.throws(() => new RunnablePool({ fetchMaxBytes: 2 ** 30 }), RangeError);
      assert.equal(new RunnablePool().allowedHosts.length, 0, "deny by default");
    });
  } finally {
    await server.shutdown();
  }
});

// Modules with the exact imports of the TinyGo, Grain and Swift SDKs (tests/wasm/*_like.wat say
// where each list comes from): no toolchain here builds the real ones.
const SDK_LIKE: ReadonlyArray<{ lang: string; unsupported: string[] }> = [
  { lang: "tinygo", unsupported: [] },
  { lang: "grain", unsupported: [] },
  { lang: "swift", unsupported: [] },
];

for (const { lang, unsupported } of SDK_LIKE) {
  Deno.test(`a module with the imports of a ${lang} runnable loads, starts and answers`, async (t) => {
    const { logs, log } = recorder();
    using runnable = await load(
      new URL(`tests/wasm/${lang}_like.wasm`, repo),
      `${lang}_like`,
      { log, concurrency: 2 },
    );

    await t.step("every host function of the SDK is supported", () => {
      assert.deepEqual(runnable.unsupportedImports, unsupported);
    });

    await t.step(
      "its _start (and init) ran before the first job, and every job after",
      async () => {
        // Without them run_e answers "not registered" (Swift: nothing).
        for (const name of ["my friend", "again"]) {
          assert.equal(output(await run(runnable, name)), `hello, ${name}`);
        }
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => run(runnable, `job ${i}`)),
        );
        assert.deepEqual(results.map(output), results.map((_, i) => `hello, job ${i}`));
      },
    );

    await t.step("what it writes to stdout reaches the log, a line per job", () => {
      const printed = logs.filter((l) => l.message === `hello from ${lang}`);
      assert.equal(printed.length, 10);
      for (const { level, fields } of printed) {
        assert.equal(level, "info");
        assert.equal(fields.runnable, `${lang}_like`);
        assert.ok(isIdent(fields.ident));
      }
      const others = logs.filter((l) => l.message !== `hello from ${lang}`);
      if (lang === "swift") {
        // log_msg_swift: the ident sits before Swift's two extra parameters.
        assert.equal(others.length, 10);
        assert.ok(others.every((l) => l.level === "info" && l.message === "swift runnable ran"));
      } else {
        assert.deepEqual(others, []);
      }
    });
  });
}

Deno.test("an import no SDK declares is named: unsupported in env, refused from another module", async (t) => {
  await t.step(
    "env.does_not_exist loads, listed, and a job calling it fails naming it",
    async () => {
      using runnable = await load(
        testModule("unknown_import"),
        "unknown_import",
      );
      assert.deepEqual(runnable.unsupportedImports, ["env.does_not_exist"]);
      assert.deepEqual(await run(runnable, "c"), {
        ok: false,
        code: 500,
        message: 'runnable "unknown_import": host function env.does_not_exist is not supported yet',
      });
      assert.equal(output(await run(runnable, "still serving")), "still serving");
    },
  );

  await t.step("a function of an unknown import module fails the load, naming it", async () => {
    const bytes = await Deno.readFile(testModule("unknown_module"));
    await assert.rejects(
      () => Runnable.load("unknown_module", bytes),
      (error: unknown) => {
        assert.ok(error instanceof RunnableError);
        assert.equal(
          error.message,
          'runnable "unknown_module" imports suborbital.does_not_exist (function), which the ' +
            'host cannot provide; it provides functions of "env" and "wasi_snapshot_preview1" only',
        );
        return true;
      },
    );
  });
});

Deno.test("proc_exit(0) inside _start is a clean initialisation; inside a job it ends the job", async () => {
  using runnable = await load(testModule("start_exit"), "start_exit", {
    concurrency: 1,
  });
  // What _start wrote before it exited is there for every job, and nothing failed.
  assert.equal(output(await run(runnable, " one")), "ready one");
  assert.equal(output(await run(runnable, " two")), "ready two");
  assert.equal(output(await run(runnable, "x")), "", "proc_exit(0) in run_e: an empty answer");
  assert.equal(output(await run(runnable, " three")), "ready three");
});
