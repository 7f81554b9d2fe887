/**
 * The cost of a job through a {@linkcode RunnablePool} against the job itself.
 *
 * One group, helloworld-rs with a 9-byte input:
 * - baseline: the same module called directly on this thread (minimal host functions, no
 *   worker, no time limit): what the Wasm job itself costs;
 * - one job at a time through a pool of 2 workers: the latency a lone request pays;
 * - 64 jobs in flight on a pool of 2 workers: each iteration waits for the oldest job and
 *   submits a new one, so iter/s is the pool's throughput in jobs per second at that load.
 *
 * Run: `deno bench --allow-read bench/wasm_bench.ts`
 *
 * @module
 */

import { Runnable, RunnablePool } from "../src/wasm/mod.ts";

const HELLO_FILE = new URL("../runnables/helloworld-rs/helloworld-rs.wasm", import.meta.url);
const IN_FLIGHT = 64;
const GROUP = "helloworld-rs job, 9-byte input";

const bytes = await Deno.readFile(HELLO_FILE);
const input = new TextEncoder().encode("my friend");
const direct = await directCall(bytes);
// The pool lives as long as the bench process: Deno.bench has no teardown.
const pool = new RunnablePool({ concurrency: 2 });
const hello = await Runnable.load("helloworld-rs", bytes, { pool });

// Fail loudly rather than time a broken path.
const check = await hello.run(input);
if (!check.ok || new TextDecoder().decode(check.output) !== "hello, my friend") {
  throw new Error(`helloworld-rs answered ${JSON.stringify(check)}`);
}
if (new TextDecoder().decode(direct(input)) !== "hello, my friend") {
  throw new Error("the direct call did not answer hello, my friend");
}

Deno.bench("direct call on this thread (baseline)", { group: GROUP, baseline: true }, () => {
  direct(input);
});

Deno.bench("pool of 2 workers, one job at a time", { group: GROUP }, async () => {
  await hello.run(input);
});

// A window of IN_FLIGHT jobs: each iteration waits for the oldest and submits one more, so the
// time per iteration is the time per job at that load (1 / throughput).
const inFlight: Promise<unknown>[] = Array.from({ length: IN_FLIGHT }, () => hello.run(input));
let oldest = 0;
Deno.bench(`pool of 2 workers, ${IN_FLIGHT} jobs in flight`, { group: GROUP }, async () => {
  await inFlight[oldest];
  inFlight[oldest] = hello.run(input);
  oldest = (oldest + 1) % IN_FLIGHT;
});

/** Instantiates the module here, with just enough of the ABI for helloworld-rs. */
async function directCall(
  bytes: Uint8Array<ArrayBuffer>,
): Promise<(input: Uint8Array) => Uint8Array> {
  interface Exports {
    allocate(size: number): number;
    deallocate(ptr: number, size: number): void;
    run_e(ptr: number, size: number, ident: number): void;
    memory: WebAssembly.Memory;
  }
  let result = new Uint8Array(0);
  const { instance } = await WebAssembly.instantiate(bytes, {
    env: {
      return_result: (ptr: number, size: number) => {
        result = new Uint8Array(memory.buffer, ptr, size).slice();
      },
      return_error: () => {
        throw new Error("helloworld-rs returned an error");
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
