/**
 * A byte-logging TCP pass-through for tests: listens on a loopback port, forwards every
 * connection to a target, and keeps every byte it saw in both directions.
 *
 * @module
 */

import { concatBytes } from "../src/wire/mod.ts";

/** A running tap. */
export class TcpTap {
  readonly #listener: Deno.TcpListener;
  readonly #target: Deno.ConnectOptions;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  readonly #streams: Uint8Array[][] = [];
  #total = 0;

  constructor(target: Deno.ConnectOptions) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The tap's own port. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Bytes that crossed the tap, both directions. */
  get total(): number {
    return this.#total;
  }

  /** True when `needle` appears anywhere in the recorded traffic of one connection direction. */
  contains(needle: Uint8Array): boolean {
    return this.#streams.some((chunks) => indexOf(concatBytes(chunks), needle) >= 0);
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    await this.#accepting;
    await Promise.allSettled([...this.#tasks]);
  }

  async #accept(): Promise<void> {
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
      for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
        const task = this.#pipe(from, to);
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }
    }
  }

  async #pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const record: Uint8Array[] = [];
    this.#streams.push(record);
    const buffer = new Uint8Array(65536);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        record.push(chunk);
        this.#total += n;
        let offset = 0;
        while (offset < n) offset += await to.write(chunk.subarray(offset));
      }
    } catch {
      // a side closed
    } finally {
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch { /* already closed */ }
        this.#conns.delete(conn);
      }
    }
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
