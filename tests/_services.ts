/**
 * Runs Stratos services as real processes for end-to-end tests, with exactly the Deno
 * permission flags their `deno task` has in deno.json.
 *
 * @module
 */

/** The repository root. */
export const ROOT: string = new URL("..", import.meta.url).pathname;

const tasks: Record<string, string> = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
).tasks;

/**
 * The arguments after `deno` of a task in deno.json (tasks there are plain `deno ...` lines),
 * this repository's or, with `root`, another tree's.
 */
export function taskArgs(task: string, root: string = ROOT): string[] {
  const line: string | undefined = root === ROOT
    ? tasks[task]
    : JSON.parse(Deno.readTextFileSync(`${root}/deno.json`)).tasks?.[task];
  if (!line?.startsWith("deno ")) {
    throw new Error(`${root}/deno.json has no plain deno task "${task}"`);
  }
  return line.slice(5).split(/\s+/).filter((a) => a.length > 0);
}

/** A running service process. */
export class Service {
  readonly name: string;
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #stderr: string[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #reading: Promise<void>;
  #status: Deno.CommandStatus | undefined;

  private constructor(name: string, child: Deno.ChildProcess) {
    this.name = name;
    this.#child = child;
    this.#reading = Promise.all([
      this.#collect(child.stdout, this.#lines),
      this.#collect(child.stderr, this.#stderr),
    ]).then(() => {});
    child.status.then((s) => {
      this.#status = s;
      this.#wake();
    });
  }

  /**
   * Starts `deno <task's flags> <args>` with a given environment, from this repository or
   * another tree at `root`.
   */
  static start(
    task: string,
    args: readonly string[],
    env: Record<string, string>,
    root: string = ROOT,
  ): Service {
    const child = new Deno.Command(Deno.execPath(), {
      args: [...taskArgs(task, root), ...args],
      cwd: root,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Service(task, child);
  }

  /** Starts a shell command line exactly as a user would type it, from the repo root. */
  static shell(name: string, line: string, env: Record<string, string>): Service {
    const child = new Deno.Command("sh", {
      args: ["-c", line],
      cwd: ROOT,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Service(name, child);
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** CPU time used so far, user and system, all threads, in ms (Linux /proc). */
  async cpuMs(): Promise<number> {
    // Fields after the command name (which may hold spaces) start at ") ".
    const fields = (await this.#proc("stat")).split(") ")[1]!.split(" ");
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 per second here).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  }

  /** Resident memory now and at its peak, in KiB (Linux /proc). */
  async memory(): Promise<{ rssKiB: number; peakKiB: number }> {
    const status = await this.#proc("status");
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    return { rssKiB: field("VmRSS"), peakKiB: field("VmHWM") };
  }

  /** This process's file `/proc/PID/<name>`, read through cat: Deno reads /proc only with -A. */
  async #proc(name: string): Promise<string> {
    const { stdout } = await new Deno.Command("cat", { args: [`/proc/${this.#child.pid}/${name}`] })
      .output();
    return new TextDecoder().decode(stdout);
  }

  /** Stdout lines so far. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /** Everything written to stderr so far. */
  get stderr(): string {
    return this.#stderr.join("\n");
  }

  /** The exit status once it has exited. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Waits for a stdout line matching `pattern` (including lines already printed). */
  async line(pattern: RegExp, timeoutMs = 20_000, from = 0): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      for (let i = from; i < this.#lines.length; i++) {
        const match = pattern.exec(this.#lines[i]!);
        if (match) return match;
      }
      if (this.#status) {
        throw new Error(
          `${this.name} exited (${this.#status.code}) before printing ${pattern}\n${this.stderr}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.name} printed no line matching ${pattern}\n${this.stderr}`);
      }
      await this.#next(deadline - Date.now());
    }
  }

  /** Waits for the process to exit. */
  async exited(timeoutMs = 20_000): Promise<Deno.CommandStatus> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    try {
      const status = await this.#child.status;
      await this.#reading;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal (ignored when already exited). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#status) return;
    try {
      this.#child.kill(signal);
    } catch { /* exited meanwhile */ }
  }

  /** SIGTERM, then waits for the exit. */
  async stop(): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    return await this.exited();
  }

  #next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  async #collect(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      into.push(...parts);
      this.#wake();
    }
    if (rest) into.push(rest);
    this.#wake();
  }
}

/**
 * Starts bench:e2e's bare pipeline (bench/_bare_pipeline.ts): relay, back end, then front, each
 * pushed onto `services` as it starts (stop them from there).
 *
 * @returns the front's HTTP port, and the three processes in the order front, relay, back
 */
export async function startBarePipeline(
  services: Service[],
): Promise<{ port: number; processes: [Service, Service, Service] }> {
  const listening = /^listening on 127\.0\.0\.1:(\d+)$/;
  const relay = Service.start("bench:bare", ["relay"], {});
  services.push(relay);
  const relayPort = (await relay.line(listening))[1]!;
  const back = Service.start("bench:bare", ["back", relayPort], {});
  services.push(back);
  await back.line(/^connected$/);
  const front = Service.start("bench:bare", ["front", relayPort], {});
  services.push(front);
  const port = Number((await front.line(listening))[1]);
  return { port, processes: [front, relay, back] };
}
