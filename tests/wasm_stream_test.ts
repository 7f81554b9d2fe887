// Tests of streamed inputs (src/wasm/_input_call.ts): a job's input pulled chunk by chunk from
// the main thread straight into the instance's memory. Needs --allow-read (the modules:
// tests/wasm/echo.wasm and tests/wasm/stream_probe.wasm, built from the .wat beside them by
// tests/wasm/build.sh); with --allow-write the memory test also reads the process's peak RSS
// from /proc (Linux), else it samples Deno.memoryUsage().rss.
//
// The memory test comes first: it measures the process, so it runs before the others grow it.

import assert from "node:assert/strict";
import {
  MAX_INPUT_CHUNK,
  type RequestInfo,
  RunnablePool,
  type RunResult,
  type StreamedInput,
} from "../src/wasm/mod.ts";
import { load, testModule } from "./_wasm_modules.ts";

import { copyFromShared } from "../src/wasm/_job_channel.ts";

const ECHO_FILE = testModule("echo");
const PROBE_FILE = testModule("stream_probe");
const MIB = 1024 * 1024;
const WASM_PAGE = 65536;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Byte `i` of the test pattern `seed`: varies within and across chunks. */
function patternByte(seed: number, i: number): number {
  return (i * 31 + (i >>> 12) * 7 + seed) & 0xff;
}

function pattern(seed: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = patternByte(seed, i);
  return bytes;
}

/** `bytes` as chunks of the sizes `sizes` gives in turn (cycling), empty ones included. */
async function* chunked(
  bytes: Uint8Array,
  sizes: readonly number[],
): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let n = 0; at < bytes.length; n++) {
    const size = sizes[n % sizes.length]!;
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

function streamed(bytes: Uint8Array, sizes: readonly number[] = [64 * 1024]): StreamedInput {
  return { size: bytes.length, chunks: chunked(bytes, sizes) };
}

function request(): RequestInfo {
  return {
    method: "POST",
    url: "/stream",
    id: "req-1",
    body: new Uint8Array(0),
    headers: {},
    params: {},
    state: {},
  };
}

function failure(result: RunResult): { code: number; message: string } {
  assert.ok(!result.ok, `expected a failed job, got ${result.ok ? "an output" : ""}`);
  return result;
}

function assertOutput(result: RunResult, expected: Uint8Array, label: string): void {
  assert.ok(result.ok, `${label}: expected an output, got ${JSON.stringify(result)}`);
  assert.equal(result.output.length, expected.length, `${label}: output length`);
  for (let i = 0; i < expected.length; i++) {
    if (result.output[i] !== expected[i]) {
      assert.fail(`${label}: byte ${i} is ${result.output[i]}, expected ${expected[i]}`);
    }
  }
}

/** The peak RSS since {@linkcode resetPeak}, from /proc (Linux), or undefined. */
function peakRss(): number | undefined {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}

/** Resets the kernel's peak RSS to the current RSS; false where that is not possible. */
function resetPeak(): boolean {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

Deno.test("a 100 MiB streamed input echoed back costs about its size twice in the process", async () => {
  const size = 100 * MIB;
  const pages = Math.ceil(size / WASM_PAGE) + 64;
  using echo = await load(ECHO_FILE, "echo", {
    concurrency: 1,
    maxMemoryPages: pages,
    maxOutputBytes: size,
    timeoutMs: 120_000,
  });
  // The worker, its instance and the channel exist before the baseline is taken.
  assertOutput(await echo.run(encoder.encode("warm")), encoder.encode("warm"), "warm-up");
  assertOutput(
    await echo.run(streamed(encoder.encode("warm")), request()),
    encoder.encode("warm"),
    "streamed warm-up",
  );

  // The producer hands out views of one 1 MiB block: it holds nothing per chunk.
  const block = pattern(1, MIB);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < size; at += 256 * 1024) {
      const from = at % MIB;
      yield block.subarray(from, from + 256 * 1024);
    }
  }
  const before = Deno.memoryUsage().rss;
  const kernelPeak = resetPeak();
  let sampled = before;
  const sampler = setInterval(() => {
    sampled = Math.max(sampled, Deno.memoryUsage().rss);
  }, 2);
  let result: RunResult;
  try {
    result = await echo.run({ size, chunks: chunks() }, request());
  } finally {
    clearInterval(sampler);
  }
  sampled = Math.max(sampled, Deno.memoryUsage().rss);
  const peak = Math.max(sampled, (kernelPeak ? peakRss() : undefined) ?? 0);
  const grown = peak - before;
  const figure = `peak RSS ${(peak / MIB).toFixed(1)} MiB, ${(grown / MIB).toFixed(1)} MiB ` +
    `(${(grown / size).toFixed(2)}x the body) over ${(before / MIB).toFixed(1)} MiB before ` +
    `(${kernelPeak ? "kernel peak and samples" : "samples every 2 ms"})`;
  if (!result.ok) assert.fail(`the job failed: ${JSON.stringify(result)}; ${figure}`);
  assert.equal(result.output.length, size, figure);
  for (let i = 0; i < size; i += 4093) {
    if (result.output[i] !== block[i % MIB]) {
      assert.fail(`output byte ${i} is ${result.output[i]}, expected ${block[i % MIB]}`);
    }
  }
  // The body once in the instance's memory, once as the output: about 2x, plus a constant.
  assert.ok(grown < 3.2 * size, `the streamed job grew the process too much: ${figure}`);
  // deno-lint-ignore no-console -- the figure the issue asks for, in the test's output
  console.log(`      ${figure}`);
});

Deno.test("streamed inputs arrive whole whatever the chunk sizes", async (t) => {
  using pool = new RunnablePool({ concurrency: 1 });
  using echo = await load(ECHO_FILE, "echo", { pool, maxMemoryPages: 256 });
  using probe = await load(PROBE_FILE, "stream_probe", { pool, maxMemoryPages: 256 });
  const cases: [string, number, number[]][] = [
    ["empty", 0, [1]],
    ["one byte", 1, [1]],
    ["1-byte chunks", 5000, [1]],
    ["a chunk boundary on every 4 KiB page edge", 5 * 4096, [4096]],
    ["uneven chunks with empty ones between", 100_003, [0, 7, 4095, 0, 4097, 65_537]],
    ["exactly what one reply carries", MAX_INPUT_CHUNK, [MAX_INPUT_CHUNK]],
    ["one byte more than a reply carries", MAX_INPUT_CHUNK + 1, [MAX_INPUT_CHUNK + 1]],
    ["one chunk of 3 MiB and 5 bytes, split by the pool", 3 * MIB + 5, [3 * MIB + 5]],
  ];
  for (const [label, size, sizes] of cases) {
    await t.step(`${label}: ${size} bytes echoed`, async () => {
      const bytes = pattern(size, size);
      assertOutput(await echo.run(streamed(bytes, sizes)), bytes, label);
    });
  }
  await t.step("the meta field body reads a streamed body from the instance's memory", async () => {
    for (const size of [10, 20_000, 300_001, 2 * MIB + 3]) {
      // Not "!", "t" or "{": the probe answers its body.
      const bytes = pattern(size, size);
      bytes[0] = 0x61;
      assertOutput(
        await probe.run(streamed(bytes, [12_345]), request()),
        bytes,
        `body of ${size}`,
      );
    }
  });
  await t.step("a JSON field of a streamed body", async () => {
    const body = encoder.encode(JSON.stringify({ k: "streamed value", pad: "x".repeat(50_000) }));
    const result = await probe.run(streamed(body, [1000]), request());
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(decoder.decode(result.output), "streamed value");
  });
  await t.step("a body the runnable wrote over is refused, not answered wrong", async () => {
    const bytes = pattern(7, 200_000);
    bytes[0] = 0x21; // "!": the probe changes a byte in the middle, then reads its body
    const { code, message } = failure(await probe.run(streamed(bytes), request()));
    assert.equal(code, 422);
    assert.match(message, /wrote over its input/);
  });
  await t.step("a small body the runnable wrote over is still the original", async () => {
    const bytes = pattern(8, 1000);
    bytes[0] = 0x21;
    assertOutput(await probe.run(streamed(bytes), request()), bytes, "small body");
  });
  await t.step(
    "a request too large for the channel comes by message, body still streamed",
    async () => {
      const bytes = pattern(9, 70_000);
      bytes[0] = 0x61;
      const big = { ...request(), state: { blob: new Uint8Array(400 * 1024) } };
      assertOutput(await probe.run(streamed(bytes), big), bytes, "by message");
    },
  );
  await t.step("Uint8Array inputs still work beside streamed ones", async () => {
    const bytes = pattern(10, 1000);
    assertOutput(await echo.run(bytes), bytes, "whole input");
  });
});

Deno.test("a streamed input of the wrong size fails its job with code 400", async (t) => {
  using pool = new RunnablePool({ concurrency: 1 });
  using echo = await load(ECHO_FILE, "echo", { pool, maxMemoryPages: 64 });
  await t.step("shorter than announced", async () => {
    const { code, message } = failure(
      await echo.run({ size: 1000, chunks: chunked(pattern(1, 600), [100]) }),
    );
    assert.equal(code, 400);
    assert.equal(
      message,
      "the request body was shorter than its announced size: it ended after 600 of 1000 bytes",
    );
  });
  await t.step("longer than announced, within a chunk", async () => {
    const { code, message } = failure(
      await echo.run({ size: 1000, chunks: chunked(pattern(1, 1500), [700]) }),
    );
    assert.equal(code, 400);
    assert.equal(message, "the request body was longer than its announced size of 1000 bytes");
  });
  await t.step("longer than announced, by a chunk after the last byte", async () => {
    const { code, message } = failure(
      await echo.run({ size: 1000, chunks: chunked(pattern(1, 1001), [1000, 1]) }),
    );
    assert.equal(code, 400);
    assert.match(message, /longer than its announced size of 1000 bytes/);
  });
  await t.step("a producer that throws", async () => {
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(10);
      throw new Error("connection reset by peer");
    }
    const { code, message } = failure(await echo.run({ size: 100, chunks: broken() }));
    assert.equal(code, 400);
    assert.equal(message, "the request body could not be read: connection reset by peer");
  });
  await t.step("a chunk that is not bytes", async () => {
    async function* strings(): AsyncGenerator<Uint8Array> {
      yield "text" as unknown as Uint8Array;
    }
    const { code, message } = failure(await echo.run({ size: 4, chunks: strings() }));
    assert.equal(code, 400);
    assert.match(message, /a chunk is a string, not a Uint8Array/);
  });
  await t.step("larger than the memory limit: 413 before a chunk is read", async () => {
    let read = false;
    async function* never(): AsyncGenerator<Uint8Array> {
      read = true;
      yield new Uint8Array(1);
    }
    const { code, message } = failure(await echo.run({ size: 65 * WASM_PAGE, chunks: never() }));
    assert.equal(code, 413);
    assert.match(message, /does not fit runnable "echo"'s memory limit of 4194304 bytes/);
    assert.equal(read, false);
  });
  await t.step(
    "a size that is not a whole number, or no chunks, is the caller's mistake",
    async () => {
      const chunks = chunked(new Uint8Array(1), [1]);
      await assert.rejects(echo.run({ size: 1.5, chunks }), RangeError);
      await assert.rejects(echo.run({ size: -1, chunks }), RangeError);
      await assert.rejects(
        echo.run({ size: 1 } as unknown as StreamedInput),
        /input must be a Uint8Array or a StreamedInput/,
      );
    },
  );
  await t.step("the worker goes on after each failure", async () => {
    const bytes = pattern(3, 5000);
    assertOutput(await echo.run(streamed(bytes, [999])), bytes, "after failures");
  });
});

/** A producer that yields `first`, then waits until released (or forever), and what it saw. */
function held(first: Uint8Array, rest: Uint8Array) {
  const seen = { pulls: 0, returned: false };
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const chunks: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => {
      let step = 0;
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          seen.pulls++;
          step++;
          if (step === 1) return { done: false, value: first };
          if (step === 2) {
            await gate;
            return { done: false, value: rest };
          }
          return { done: true, value: undefined };
        },
        return(): Promise<IteratorResult<Uint8Array>> {
          seen.returned = true;
          return Promise.resolve({ done: true, value: undefined });
        },
      };
    },
  };
  return { chunks, seen, release };
}

Deno.test("the pool reads a chunk only when the worker asks for it", async () => {
  using echo = await load(ECHO_FILE, "echo", { concurrency: 1, maxMemoryPages: 64 });
  const first = pattern(1, 3000);
  const rest = pattern(2, 2000);
  const { chunks, seen, release } = held(first, rest);
  const job = echo.run({ size: 5000, chunks });
  await new Promise((resolve) => setTimeout(resolve, 200));
  // The first chunk was handed over and the second asked for: nothing read ahead.
  assert.equal(seen.pulls, 2);
  release();
  const expected = new Uint8Array(5000);
  expected.set(first);
  expected.set(rest, 3000);
  assertOutput(await job, expected, "held producer");
  // Once for the end of the input.
  assert.equal(seen.pulls, 3);
  assert.equal(seen.returned, false);
});

Deno.test("a job stopped while it waits for a chunk ends at once, its producer told to stop", async (t) => {
  using pool = new RunnablePool({ concurrency: 1 });
  using echo = await load(ECHO_FILE, "echo", { pool, maxMemoryPages: 64 });
  using slow = await load(ECHO_FILE, "echo-200ms", { pool, maxMemoryPages: 64, timeoutMs: 200 });
  await t.step("aborted", async () => {
    const { chunks, seen } = held(new Uint8Array(100), new Uint8Array(100));
    const controller = new AbortController();
    const job = echo.run({ size: 200, chunks }, undefined, { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    controller.abort(new Error("client went away"));
    await assert.rejects(job, /client went away/);
    assert.ok(performance.now() - started < 100, "the job did not end at once");
    assert.equal(seen.returned, true, "the producer was not told to stop");
  });
  await t.step("out of time", async () => {
    const { chunks, seen } = held(new Uint8Array(100), new Uint8Array(100));
    const started = performance.now();
    const { code, message } = failure(await slow.run({ size: 200, chunks }));
    const took = performance.now() - started;
    assert.equal(code, 504);
    assert.match(message, /exceeded its time limit of 200 ms/);
    assert.ok(took < 1000, `the job took ${took.toFixed(0)} ms to end`);
    assert.equal(seen.returned, true);
  });
  await t.step("the worker serves the next job", async () => {
    const bytes = pattern(4, 10_000);
    assertOutput(await echo.run(streamed(bytes, [3333])), bytes, "after a stop");
  });
});

Deno.test("a runnable that traps after reading a streamed input fails only its job", async () => {
  using pool = new RunnablePool({ concurrency: 1 });
  using probe = await load(PROBE_FILE, "stream_probe", { pool, maxMemoryPages: 256 });
  const bytes = pattern(5, 2 * MIB);
  bytes[0] = 0x74; // "t": trap
  const { code, message } = failure(await probe.run(streamed(bytes, [100_000]), request()));
  assert.equal(code, 500);
  assert.match(message, /runnable "stream_probe" trapped: RuntimeError: unreachable/);
  bytes[0] = 0x61;
  assertOutput(await probe.run(streamed(bytes, [100_000]), request()), bytes, "after a trap");
});

Deno.test("concurrent streamed jobs on a pool of 2 workers each get their own input", async () => {
  using echo = await load(ECHO_FILE, "echo", { concurrency: 2, maxMemoryPages: 256 });
  const inputs = Array.from({ length: 8 }, (_, i) => pattern(100 + i, MIB + i * 4099));
  // Producers that yield to the event loop between chunks, so the jobs interleave.
  async function* slowly(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < bytes.length; at += 50_000) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      yield bytes.subarray(at, at + 50_000);
    }
  }
  const results = await Promise.all(
    inputs.map((bytes, i) =>
      i % 2 === 0 ? echo.run({ size: bytes.length, chunks: slowly(bytes) }) : echo.run(bytes) // whole inputs between them
    ),
  );
  results.forEach((result, i) => assertOutput(result, inputs[i]!, `job ${i}`));
});

/** Chunks held in a queue, like the invocation layer's ReceiveQueue: some taken without waiting. */
class QueuedChunks implements AsyncIterable<Uint8Array> {
  readonly #chunks: Uint8Array[];
  waited = 0;
  takenReady = 0;
  constructor(chunks: Uint8Array[]) {
    this.#chunks = chunks;
  }
  /** A chunk queued already, without waiting (as ReceiveQueue.takeReady). */
  takeReady(): Uint8Array | undefined {
    const chunk = this.#chunks.shift();
    if (chunk) this.takenReady++;
    return chunk;
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      this.waited++;
      await Promise.resolve();
      const chunk = this.#chunks.shift();
      if (!chunk) return;
      yield chunk;
    }
  }
}

Deno.test("a reply carries every chunk the source holds already, up to MAX_INPUT_CHUNK", async () => {
  using echo = await load(ECHO_FILE, "echo", { concurrency: 1, maxMemoryPages: 256 });
  const size = 3 * MIB + 5;
  const bytes = pattern(3, size);
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < size; at += 64 * 1024) pieces.push(bytes.subarray(at, at + 64 * 1024));
  const count = pieces.length;
  const chunks = new QueuedChunks(pieces);
  assertOutput(await echo.run({ size, chunks }), bytes, "queued chunks");
  // 49 chunks of 64 KiB in replies of at most 1 MiB: four waits (and one for the end), the
  // other chunks taken at hand.
  assert.ok(chunks.waited <= 6, `the pool waited for ${chunks.waited} chunks`);
  assert.equal(chunks.takenReady + chunks.waited - 1, count);
});

Deno.test("copyFromShared copies out of shared memory at every alignment", () => {
  const shared = new Uint8Array(new SharedArrayBuffer(300_000));
  crypto.getRandomValues(shared.subarray(0, 65536));
  crypto.getRandomValues(shared.subarray(65536, 131072));
  crypto.getRandomValues(shared.subarray(131072, 196608));
  const target = new Uint8Array(300_000);
  for (const from of [0, 3, 8, 13]) {
    for (const to of [0, 1, 6, 8, 21]) {
      for (const length of [0, 100, 4099, 150_001]) {
        target.fill(0);
        const source = shared.subarray(from, from + length);
        copyFromShared(target, to, source);
        assert.deepEqual(
          target.subarray(to, to + length),
          source.slice(),
          `${from}→${to} ×${length}`,
        );
        assert.equal(target[to + length], 0, "nothing written past the end");
        if (to > 0) assert.equal(target[to - 1], 0, "nothing written before the start");
      }
    }
  }
});
