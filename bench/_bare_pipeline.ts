// deno-lint-ignore-file no-console -- a benchmark part: it prints where it listens.
/**
 * The end-to-end benchmark's bare pipeline: Stratos's process layout with none of its work. A
 * front (`Deno.serve`, like the proxy), a relay that pipes bytes, and a back end (like the sat)
 * that answers `hello, <body>`, each its own process on loopback TCP, requests travelling as
 * length-prefixed frames batched per event-loop turn as the secure channel batches them: no
 * encryption, no invocation header, no Wasm, no limits, no metrics. Its requests/s beside the
 * plain server's is what the three processes and two TCP hops alone allow on this machine:
 * the ceiling the full path's per-request work is measured against.
 *
 * Run (three processes): `deno task bench:bare relay`, then `deno task bench:bare back PORT`
 * and `deno task bench:bare front PORT` with the relay's port; each prints
 * `listening on 127.0.0.1:PORT` (the back end `connected`).
 *
 * @module
 */

import { setImmediate } from "node:timers";

/** Frame: u32 length of what follows, u32 request id, body. */
const PREFIX = 8;

/** Calls `onFrame(id, body)` for each frame read from `conn` until it closes. */
async function readFrames(
  conn: Deno.Conn,
  onFrame: (id: number, body: Uint8Array) => void,
  onTurn: () => void = () => {},
): Promise<void> {
  let buffer = new Uint8Array(64 * 1024);
  let start = 0;
  let end = 0;
  for (;;) {
    if (end === buffer.length) {
      // Full: move what is left to the front, or grow when a frame fills the buffer.
      const left = buffer.subarray(start, end);
      if (start === 0) buffer = new Uint8Array(buffer.length * 2);
      buffer.set(left);
      end -= start;
      start = 0;
    }
    const n = await conn.read(buffer.subarray(end));
    if (n === null) return;
    end += n;
    const view = new DataView(buffer.buffer);
    while (end - start >= PREFIX) {
      const length = view.getUint32(start);
      if (end - start - 4 < length) break;
      onFrame(view.getUint32(start + 4), buffer.slice(start + PREFIX, start + 4 + length));
      start += 4 + length;
    }
    if (start === end) start = end = 0;
    onTurn();
  }
}

/** Frames queued in one turn, written together. */
class FrameWriter {
  readonly #conn: Deno.Conn;
  #frames: Uint8Array[] = [];
  #bytes = 0;
  #scheduled = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Queues a frame `id` with `parts` as its body; written at the end of this turn. */
  send(id: number, ...parts: Uint8Array[]): void {
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    const frame = new Uint8Array(PREFIX + size);
    const view = new DataView(frame.buffer);
    view.setUint32(0, 4 + size);
    view.setUint32(4, id);
    let at = PREFIX;
    for (const part of parts) {
      frame.set(part, at);
      at += part.length;
    }
    this.#frames.push(frame);
    this.#bytes += frame.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what is queued as one buffer. */
  flush(): void {
    this.#scheduled = false;
    if (this.#bytes === 0) return;
    const out = new Uint8Array(this.#bytes);
    let at = 0;
    for (const frame of this.#frames) {
      out.set(frame, at);
      at += frame.length;
    }
    this.#frames = [];
    this.#bytes = 0;
    writeAll(this.#conn, out).catch(() => {});
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

async function connect(port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return conn;
}

async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const chunk = new Uint8Array(64 * 1024);
  for (let n = await from.read(chunk); n !== null; n = await from.read(chunk)) {
    await writeAll(to, chunk.subarray(0, n));
  }
}

/** Accepts the back end, then the front, and pipes bytes between them. */
async function relay(): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(`listening on 127.0.0.1:${listener.addr.port}`);
  const back = await listener.accept();
  const front = await listener.accept();
  for (const conn of [back, front]) conn.setNoDelay(true);
  await Promise.race([pipe(front, back), pipe(back, front)]);
}

/** Answers every frame with `hello, <body>`, the answers of one read written together. */
async function back(relayPort: number): Promise<void> {
  const conn = await connect(relayPort);
  console.log("connected");
  const writer = new FrameWriter(conn);
  const hello = new TextEncoder().encode("hello, ");
  await readFrames(conn, (id, body) => writer.send(id, hello, body), () => writer.flush());
}

/** Serves HTTP; each request's body goes to the back end as a frame, its answer comes back. */
async function front(relayPort: number): Promise<void> {
  const conn = await connect(relayPort);
  const writer = new FrameWriter(conn);
  const waiting = new Map<number, (body: Uint8Array) => void>();
  let nextId = 0;
  readFrames(conn, (id, body) => {
    waiting.get(id)?.(body);
    waiting.delete(id);
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const id = nextId = (nextId + 1) >>> 0;
      const answer = new Promise<Uint8Array>((resolve) => waiting.set(id, resolve));
      writer.send(id, new Uint8Array(await request.arrayBuffer()));
      return new Response(await answer as Uint8Array<ArrayBuffer>);
    },
  );
  console.log(`listening on 127.0.0.1:${server.addr.port}`);
}

const [role, port] = Deno.args;
if (role === "relay") await relay();
else if ((role === "back" || role === "front") && /^\d+$/.test(port ?? "")) {
  await (role === "back" ? back : front)(Number(port));
} else {
  const usage = "usage: deno task bench:bare relay | back RELAY_PORT | front RELAY_PORT\n" +
    "The bare pipeline of the end-to-end benchmark: Stratos's three processes with none of " +
    "its work (see bench/_bare_pipeline.ts).";
  if (role === "--help" || role === "-h") console.log(usage);
  else {
    console.error(
      `${role === undefined ? "no role given" : `bad arguments: ${Deno.args.join(" ")}`}\n${usage}`,
    );
    Deno.exit(2);
  }
}
