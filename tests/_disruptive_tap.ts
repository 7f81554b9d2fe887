/**
 * A disruptive TCP pass-through for tests, after Ockam's portal tests: it forwards every
 * connection to a target and, depending on its mode (switchable while running), delays each
 * chunk with jitter, throttles the bandwidth, splits every write into 1-byte pieces, or closes
 * connections at random. A seeded PRNG makes the random choices repeatable.
 *
 * @module
 */

/** How the tap treats traffic. */
export type Disruption =
  | { readonly kind: "none" }
  /** Each chunk waits `ms` plus up to `jitterMs` more (order kept). */
  | { readonly kind: "delay"; readonly ms: number; readonly jitterMs: number }
  /** At most `bitsPerSecond` in each direction of each connection. */
  | { readonly kind: "throttle"; readonly bitsPerSecond: number }
  /** Every chunk is written one byte at a time. */
  | { readonly kind: "split" }
  /** Each chunk closes its connection with probability `probability`. */
  | { readonly kind: "close"; readonly probability: number };

/** A running tap. */
export class DisruptiveTap {
  readonly #listener: Deno.TcpListener;
  readonly #target: Deno.ConnectOptions;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  #mode: Disruption = { kind: "none" };
  #seed: number;
  #closedByTap = 0;

  constructor(target: Deno.ConnectOptions, seed = 1) {
    this.#target = target;
    this.#seed = seed >>> 0 || 1;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The tap's own port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Connections the tap closed on purpose. */
  get closedByTap(): number {
    return this.#closedByTap;
  }

  /** Switches the disruption for all traffic from now on. */
  set mode(mode: Disruption) {
    this.#mode = mode;
  }

  /** Closes every connection now (as a network failure would). */
  dropAll(): void {
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    this.#conns.clear();
  }

  async close(): Promise<void> {
    this.#listener.close();
    this.dropAll();
    await this.#accepting;
    await Promise.allSettled([...this.#tasks]);
  }

  /** xorshift32: deterministic per seed. */
  #random(): number {
    let x = this.#seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#seed = x >>> 0;
    return this.#seed / 0x1_0000_0000;
  }

  async #accept(): Promise<void> {
    try {
      for await (const inbound of this.#listener) {
        let outbound: Deno.Conn;
        try {
          outbound = await Deno.connect(this.#target);
        } catch {
          inbound.close();
          continue;
        }
        this.#conns.add(inbound);
        this.#conns.add(outbound);
        const close = () => {
          for (const conn of [inbound, outbound]) {
            this.#conns.delete(conn);
            try {
              conn.close();
            } catch { /* already closed */ }
          }
        };
        for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
          const task = this.#pump(from, to, close).finally(() => this.#tasks.delete(task));
          this.#tasks.add(task);
        }
      }
    } catch { /* listener closed */ }
  }

  async #pump(from: Deno.Conn, to: Deno.Conn, close: () => void): Promise<void> {
    const buffer = new Uint8Array(16 * 1024);
    let budgetAt = performance.now();
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        const mode = this.#mode;
        if (mode.kind === "close" && this.#random() < mode.probability) {
          this.#closedByTap++;
          break;
        }
        if (mode.kind === "delay") {
          await sleep(mode.ms + this.#random() * mode.jitterMs);
        } else if (mode.kind === "throttle") {
          // Leaky bucket: this chunk may leave once the bytes before it have drained.
          budgetAt = Math.max(budgetAt, performance.now()) + (n * 8 * 1000) / mode.bitsPerSecond;
          await sleep(budgetAt - performance.now());
        }
        if (mode.kind === "split") {
          for (let i = 0; i < chunk.length; i++) await writeAll(to, chunk.subarray(i, i + 1));
        } else await writeAll(to, chunk);
      }
    } catch { /* either side closed */ }
    close();
  }
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}
