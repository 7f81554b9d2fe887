/**
 * For the operations tests (bundles, arm64, container, permissions): a folder holding a
 * Directive and its runnable, and a relay + proxy + sat started by caller-chosen commands
 * that must answer `hello, my friend`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, type Service } from "./_services.ts";

/** The Directive of the app folders: one route, one runnable. */
export const HELLO_DIRECTIVE = `identifier: com.example.ops
appVersion: v0.1.0
atmoVersion: v0.4.0
handlers:
  - type: request
    resource: /hello
    method: POST
    steps:
      - fn: helloworld-rs
`;

/** The runnable the Directive calls, as built in the repository. */
export const HELLO_WASM: string = join(ROOT, "runnables/helloworld-rs/helloworld-rs.wasm");

/**
 * Writes `dir`/Directive.yaml and `dir`/runnables/helloworld-rs.wasm (created if needed).
 *
 * @returns The Directive's path.
 */
export async function writeApp(dir: string): Promise<string> {
  await Deno.mkdir(join(dir, "runnables"), { recursive: true });
  await Deno.copyFile(HELLO_WASM, join(dir, "runnables/helloworld-rs.wasm"));
  const directive = join(dir, "Directive.yaml");
  await Deno.writeTextFile(directive, HELLO_DIRECTIVE);
  return directive;
}

/** Quotes a word for `sh -c`. */
export function shq(word: string): string {
  return /^[A-Za-z0-9_\-./=:,+@%]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Starts one service with these flags of its own (after the command that runs it). */
export type Starter = (args: string[]) => Service;

/** What {@linkcode helloThrough} saw. */
export interface HelloResult {
  status: number;
  text: string;
  /** The sat's flags from the proxy's `sat command:` line. */
  satArgs: string[];
}

/**
 * Starts a relay (`--listen 127.0.0.1:0`), a proxy on it (`--http 127.0.0.1:0`, its Directive
 * from `proxyArgs` or its working folder) and a sat with the flags the proxy printed, then
 * POSTs "my friend" to /hello until a sat answers (or `ms` pass). Stops all three.
 */
export async function helloThrough(
  start: { relay: Starter; proxy: Starter; sat: Starter },
  options: { proxyArgs?: string[]; satArgs?: string[]; ms?: number } = {},
): Promise<HelloResult> {
  const services: Service[] = [];
  try {
    const relay = start.relay(["--listen", "127.0.0.1:0"]);
    services.push(relay);
    const relayPort = (await relay.line(/^listening on 127\.0\.0\.1:(\d+)$/, 30_000))[1]!;
    const proxy = start.proxy([
      "--relay",
      `127.0.0.1:${relayPort}`,
      "--http",
      "127.0.0.1:0",
      ...(options.proxyArgs ?? []),
    ]);
    services.push(proxy);
    const httpPort = (await proxy.line(/^listening on 127\.0\.0\.1:(\d+)$/, 30_000))[1]!;
    const command = (await proxy.line(/^sat command: deno task sat (.*)$/, 30_000))[1]!;
    const satArgs = [...command.split(" "), ...(options.satArgs ?? [])];
    const sat = start.sat(satArgs);
    services.push(sat);
    const deadline = Date.now() + (options.ms ?? 30_000);
    for (;;) {
      const response = await fetch(`http://127.0.0.1:${httpPort}/hello`, {
        method: "POST",
        body: "my friend",
      });
      const text = await response.text();
      if (response.status === 200 || Date.now() > deadline) {
        if (response.status !== 200) {
          assert.fail(
            `no sat answered within ${options.ms ?? 30_000} ms: ${response.status} ${text}\n` +
              services.map((s) => `--- ${s.name}\n${s.stderr}`).join("\n"),
          );
        }
        return { status: response.status, text, satArgs };
      }
      if (sat.status) assert.fail(`the sat exited (${sat.status.code}):\n${sat.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    for (const service of services.reverse()) await service.stop();
  }
}
