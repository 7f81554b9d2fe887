/**
 * HTTP loads for the end-to-end benchmarks: `wrk` against a URL, and the loads of one
 * configuration round after round with the CPU time its processes used.
 *
 * @module
 */

/** One load's figures. */
export interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

/**
 * Loads `url` with wrk (1 thread, `connections` connections, `seconds`) with POSTs of
 * `my friend`, counting any answer other than 200 `hello, my friend` as an error.
 */
export async function wrk(url: string, seconds: number, connections = 32): Promise<Load> {
  const script = await Deno.makeTempFile({ suffix: ".lua" });
  await Deno.writeTextFile(
    script,
    `wrk.method = "POST"\nwrk.body = "my friend"\n` +
      `response = function(status, headers, body)\n` +
      `  if status ~= 200 or body ~= "hello, my friend" then wrk.thread:set("bad", (wrk.thread:get("bad") or 0) + 1) end\n` +
      `end\n`,
  );
  try {
    const out = await new Deno.Command("wrk", {
      args: ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "-s", script, url],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
    const socketErrors = /Socket errors: (.*)/.exec(text)?.[1];
    return {
      rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)![1]),
      p50: ms(/ 50%\s+(\S+)/.exec(text)![1]!),
      p99: ms(/ 99%\s+(\S+)/.exec(text)![1]!),
      errors: non2xx +
        (socketErrors ? socketErrors.match(/\d+/g)!.map(Number).reduce((a, b) => a + b) : 0),
    };
  } finally {
    await Deno.remove(script);
  }
}

/** The median of `values` (of an even count, the mean of the middle two). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Something whose CPU time can be read: a service, or the ssh tunnel's processes. */
export interface CpuSource {
  cpuMs(): Promise<number>;
}

/** The loads of one configuration, round after round, and the CPU its processes used. */
export class Runs {
  readonly loads: Load[] = [];
  readonly #cpuMs: number[];
  #requests = 0;

  constructor(
    readonly name: string,
    readonly url: string,
    readonly processes: readonly CpuSource[],
    readonly seconds: number,
  ) {
    this.#cpuMs = processes.map(() => 0);
  }

  async measure(): Promise<void> {
    const before = await Promise.all(this.processes.map((p) => p.cpuMs()));
    const load = await wrk(this.url, this.seconds);
    const after = await Promise.all(this.processes.map((p) => p.cpuMs()));
    after.forEach((ms, i) => this.#cpuMs[i]! += ms - before[i]!);
    this.#requests += load.rps * this.seconds;
    this.loads.push(load);
  }

  row(): string {
    const m = (pick: (l: Load) => number) => median(this.loads.map(pick));
    return `${this.name.padEnd(38)}${m((l) => l.rps).toFixed(0).padStart(9)}${
      m((l) => l.p50).toFixed(2).padStart(9)
    }${m((l) => l.p99).toFixed(2).padStart(9)}${
      String(this.loads.reduce((sum, l) => sum + l.errors, 0)).padStart(8)
    }`;
  }

  /** CPU time of process `i` per request over all rounds. */
  cpuPerRequest(i: number): string {
    return `${(this.#cpuMs[i]! * 1000 / this.#requests).toFixed(0)} µs`;
  }
}
