/**
 * The cost of a job through a {@linkcode RunnablePool} against the job itself, and the cost of
 * starting every job from a clean state.
 *
 * Group "helloworld-rs job, 9-byte input":
 * - baseline: the same module called directly on this thread (minimal host functions, no
 *   worker, no time limit), one instance reused for every call: what the Wasm job itself
 *   costs, state leaking from call to call;
 * - a fresh `WebAssembly.Instance` per call on this thread: the obvious clean state;
 * - one job at a time through a pool of 2 workers: the latency a lone request pays, each job
 *   from a clean state (the worker resets its instance after answering);
 * - 64 jobs in flight on a pool of 2 workers: each iteration waits for the oldest job and
 *   submits a new one, so iter/s is the pool's throughput in jobs per second at that load.
 *
 * Group "1-page module (tests/wasm/counter.wasm)": the same for a module whose memory is one
 * page, where restoring a snapshot costs little whatever the job wrote.
 *
 * Run: `deno bench --allow-read bench/wasm_bench.ts`; for p50 and p99 of each case measured
 * call by call: `deno run --allow-read bench/wasm_bench.ts percentiles`.
 *
 * @module
 */

import { Runnable, RunnablePool } from "../src/wasm/mod.ts";

const HELLO_FILE = new URL("../runnables/helloworld-rs/helloworld-rs.wasm", import.meta.url);
const COUNTER_FILE = new URL("../tests/wasm/counter.wasm", import.meta.url);
const IN_FLIGHT = 64;
const HELLO = "helloworld-rs job, 9-byte input";
const COUNTER = "1-page module (tests/wasm/counter.wasm)";

const decoder = new TextDecoder();
const input = new TextEncoder().encode("my friend");

interface Case {
  group: string;
  name: string;
  baseline?: boolean;
  fn: () => void | Promise<void>;
}

/** The cases of one module: `expected` is its answer to `input` from a clean state. */
async function cases(
  group: string,
  file: URL,
  expected: string,
  pool: RunnablePool,
): Promise<Case[]> {
  const bytes = await Deno.readFile(file);
  const module = await WebAssembly.compile(bytes);
  const reused = direct(module);
  const runnable = await Runnable.load(group, bytes, { pool });

  // Fail loudly rather than time a broken path.
  const check = await runnable.run(input);
  if (!check.ok || decoder.decode(check.output) !== expected) {
    throw new Error(`${group}: the pool answered ${JSON.stringify(check)}`);
  }
  for (const call of [direct(module), direct(module)]) {
    if (decoder.decode(call(input)) !== expected) {
      throw new Error(`${group}: a fresh instance did not answer ${expected}`);
    }
  }
  reused(input);

  // A window of IN_FLIGHT jobs: each iteration waits for the oldest and submits one more, so
  // the time per iteration is the time per job at that load (1 / throughput).
  const inFlight: Promise<unknown>[] = [];
  windows.push(inFlight);
  let oldest = 0;
  return [
    {
      group,
      name: "reused instance on this thread (baseline, state leaks)",
      baseline: true,
      fn: () => {
        reused(input);
      },
    },
    {
      group,
      name: "fresh WebAssembly.Instance per call on this thread",
      fn: () => {
        direct(module)(input);
      },
    },
    {
      group,
      name: "pool of 2 workers, one clean-state job at a time",
      fn: async () => {
        await runnable.run(input);
      },
    },
    {
      group,
      name: `pool of 2 workers, ${IN_FLIGHT} clean-state jobs in flight`,
      fn: async () => {
        while (inFlight.length < IN_FLIGHT) inFlight.push(runnable.run(input));
        await inFlight[oldest];
        inFlight[oldest] = runnable.run(input);
        oldest = (oldest + 1) % IN_FLIGHT;
      },
    },
  ];
}

/** An instance of the raw module on this thread, with just enough of the ABI for a job. */
function direct(module: WebAssembly.Module): (input: Uint8Array) => Uint8Array {
  interface Exports {
    allocate(size: number): number;
    deallocate(ptr: number, size: number): void;
    run_e(ptr: number, size: number, ident: number): void;
    memory: WebAssembly.Memory;
  }
  let result = new Uint8Array(0);
  const instance = new WebAssembly.Instance(module, {
    env: {
      return_result: (ptr: number, size: number) => {
        result = new Uint8Array(memory.buffer, ptr, size).slice();
      },
      return_error: () => {
        throw new Error("the module returned an error");
      },
      log_msg: () => {},
    },
  });
  const { allocate, deallocate, run_e, memory } = instance.exports as unknown as Exports;
  return (input) => {
    const ptr = allocate(input.length);
    new Uint8Array(memory.buffer, ptr, input.length).set(input);
    run_e(ptr, input.length, 1);
    deallocate(ptr, input.length);
    return result;
  };
}

/** Jobs of the in-flight cases, settled before the pool closes. */
const windows: Promise<unknown>[][] = [];

/** Times `fn` call by call after a warm-up: p50 and p99 in µs. */
async function percentiles(
  fn: () => void | Promise<void>,
  calls: number,
): Promise<[number, number]> {
  for (let i = 0; i < calls / 10; i++) await fn();
  const times = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await fn();
    times[i] = performance.now() - start;
  }
  times.sort();
  const at = (q: number) => times[Math.min(calls - 1, Math.floor(q * calls))]! * 1000;
  return [at(0.5), at(0.99)];
}

// The pool lives as long as the bench process: Deno.bench has no teardown.
const pool = new RunnablePool({ concurrency: 2 });
const all = [
  ...await cases(HELLO, HELLO_FILE, "hello, my friend", pool),
  ...await cases(COUNTER, COUNTER_FILE, "1,1", pool),
];

if (Deno.args[0] === "percentiles") {
  // deno-lint-ignore no-console -- this mode's output is the report
  const print = console.log;
  for (const { group, name, fn } of all) {
    const [p50, p99] = await percentiles(fn, 20_000);
    print(`${group} | ${name} | p50 ${p50.toFixed(1)} µs | p99 ${p99.toFixed(1)} µs`);
    for (const window of windows) await Promise.all(window.splice(0));
  }
  pool.close();
} else {
  for (const { group, name, baseline, fn } of all) Deno.bench(name, { group, baseline }, fn);
}
