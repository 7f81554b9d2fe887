/**
 * A throwaway redis-server for tests: 127.0.0.1 at a free port, no persistence
 * (`--save '' --appendonly no`), working files in a temporary folder. It requires a password
 * for the `default` user (`DEFAULT_PASSWORD`) and has an ACL user `alice` / `ALICE_PASSWORD`,
 * so every AUTH form can be tried; `open: true` starts one without any password.
 *
 * @module
 */

import { freePort } from "./_pg_server.ts";

/** Password of the `default` user (requirepass). */
export const DEFAULT_PASSWORD = "default-secret";
/** The ACL user and its password. */
export const ACL_USER = "alice";
export const ALICE_PASSWORD = "alice-secret";

/** The redis-server program; `STRATOS_REDIS_SERVER` overrides. */
export const REDIS_SERVER: string = Deno.env.get("STRATOS_REDIS_SERVER") ?? "redis-server";

/** Why Redis tests cannot run here, or undefined when they can. */
export function redisUnavailable(): string | undefined {
  try {
    const out = new Deno.Command(REDIS_SERVER, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync();
    if (out.success) return undefined;
  } catch {
    // Not found.
  }
  return `redis-server is not installed ("${REDIS_SERVER}" did not run); ` +
    "apt-get install redis-server (.ci/run does), or set STRATOS_REDIS_SERVER";
}

/** Options of {@linkcode RedisServer.start}. */
export interface RedisServerOptions {
  /** No passwords at all. */
  readonly open?: boolean;
}

/** A running throwaway redis-server. */
export class RedisServer {
  /** TCP port on 127.0.0.1. */
  readonly port: number;
  readonly #dir: string;
  readonly #open: boolean;
  #child: Deno.ChildProcess | undefined;

  private constructor(dir: string, port: number, open: boolean) {
    this.#dir = dir;
    this.port = port;
    this.#open = open;
  }

  /** Starts a server and waits until it answers. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = await Deno.makeTempDir({ prefix: "stratos-redis-" });
    const server = new RedisServer(dir, freePort(), options.open ?? false);
    try {
      await server.#launch();
    } catch (e) {
      await server.dispose();
      throw e;
    }
    return server;
  }

  /** `127.0.0.1:<port>`, as `connections.redis.serverAddress` takes it. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Runs redis-cli against the server as the default user; returns its output. */
  async cli(...args: string[]): Promise<string> {
    const out = await new Deno.Command("redis-cli", {
      args: [
        "-h",
        "127.0.0.1",
        "-p",
        String(this.port),
        ...(this.#open ? [] : ["--no-auth-warning", "-a", DEFAULT_PASSWORD]),
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`redis-cli ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
    return new TextDecoder().decode(out.stdout).trim();
  }

  /** Stops the server. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill("SIGTERM");
    } catch {
      // It exited already (a failed start).
    }
    await child.status;
  }

  /** Starts it again on the same port (an empty dataset: nothing is persisted). */
  async restart(): Promise<void> {
    await this.stop();
    await this.#launch();
  }

  /** Stops the server and deletes its folder. */
  async dispose(): Promise<void> {
    await this.stop();
    await Deno.remove(this.#dir, { recursive: true });
  }

  async #launch(): Promise<void> {
    const auth = this.#open ? [] : [
      "--requirepass",
      DEFAULT_PASSWORD,
      // Each ACL rule is its own argument (one quoted string would be read as the user name).
      "--user",
      ACL_USER,
      "on",
      `>${ALICE_PASSWORD}`,
      "~*",
      "&*",
      "+@all",
    ];
    this.#child = new Deno.Command(REDIS_SERVER, {
      args: [
        "--bind",
        "127.0.0.1",
        "--port",
        String(this.port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        this.#dir,
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        ...auth,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if (await this.cli("PING") === "PONG") return;
      } catch {
        // Not up yet.
      }
      if (Date.now() > deadline) {
        throw new Error(`redis-server did not start on port ${this.port}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
