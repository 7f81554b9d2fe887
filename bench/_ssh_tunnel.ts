/**
 * An OpenSSH reverse tunnel (`ssh -R` through a throwaway `sshd` on loopback) in front of a local
 * port: the comparison that issue 3 names for `deno task bench:e2e`. Everything it needs (host
 * key, client key, authorized_keys, known_hosts pinning that host key, sshd_config) lives in a
 * temporary folder removed by `stop`; nothing in `~/.ssh` or `/etc/ssh` is read or changed.
 *
 * Needs `sshd`, `ssh` and `ssh-keygen` (Debian: `apt-get install openssh-server
 * openssh-client`). When one is missing or the tunnel does not come up, `startSshTunnel` says why
 * instead of throwing, and the benchmark runs without the comparison.
 *
 * @module
 */

import { join } from "node:path";

/** A running reverse tunnel. */
export interface SshTunnel {
  /** The loopback port that sshd forwards, through ssh, to the target port. */
  readonly port: number;
  /** CPU time used so far by ssh and sshd with its session processes, in ms (Linux /proc). */
  cpuMs(): Promise<number>;
  /** Stops ssh and sshd and removes the temporary folder. */
  stop(): Promise<void>;
}

/** Where Debian and most distributions install sshd (often outside a user's PATH). */
const SBIN = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

async function findProgram(name: string): Promise<string | undefined> {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean), ...SBIN];
  for (const dir of dirs) {
    const path = join(dir, name);
    try {
      if ((await Deno.stat(path)).isFile) return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Resolves once `ready()` is true (its errors count as not yet), polling every 20 ms; rejects
 * when `child` (named `who`) exits first or after `ms`.
 */
async function waitUntil(
  ready: () => Promise<boolean>,
  child: Deno.ChildProcess,
  who: string,
  what: string,
  ms = 10_000,
): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !exited) {
    if (await ready().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(
    exited ? `${who} exited while waiting for ${what}` : `waited ${ms} ms for ${what}`,
  );
}

/** True when something accepts TCP connections on `port`. */
async function listening(port: number): Promise<boolean> {
  (await Deno.connect({ hostname: "127.0.0.1", port })).close();
  return true;
}

/** True when `port` answers an HTTP POST with 200. */
async function answering(port: number): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "my friend" });
  await response.body?.cancel();
  return response.status === 200;
}

/** CPU of `roots` and all their descendants, in ms, from one read of /proc. */
async function treeCpuMs(roots: readonly number[]): Promise<number> {
  // Deno reads /proc only with -A: a shell lists it. A process may end mid-read (2>/dev/null).
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", "cat /proc/[0-9]*/stat 2>/dev/null"],
    stdout: "piped",
  }).output();
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    const close = line.lastIndexOf(") ");
    if (close < 0) continue;
    const pid = Number(line.slice(0, line.indexOf(" ")));
    // After the command name: state, ppid, ..., utime (12th), stime (13th).
    const fields = line.slice(close + 2).split(" ");
    parent.set(pid, Number(fields[1]));
    ticks.set(pid, Number(fields[11]) + Number(fields[12]));
  }
  const wanted = new Set(roots);
  let total = 0;
  for (const [pid, t] of ticks) {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p)) {
      if (wanted.has(p)) {
        total += t;
        break;
      }
    }
  }
  return total * 10; // clock ticks of 10 ms
}

/**
 * Starts sshd on a free loopback port and `ssh -R` from a second free port to `targetPort`, as
 * the current user with a fresh key pair.
 *
 * @returns the tunnel, or the reason it could not start
 */
export async function startSshTunnel(targetPort: number): Promise<SshTunnel | string> {
  const [sshd, ssh, keygen] = await Promise.all(["sshd", "ssh", "ssh-keygen"].map(findProgram));
  if (!sshd || !ssh || !keygen) {
    return "needs sshd, ssh and ssh-keygen (apt-get install openssh-server openssh-client)";
  }
  const dir = await Deno.makeTempDir({ prefix: "stratos-bench-ssh-" });
  const children: Deno.ChildProcess[] = [];
  const stop = async () => {
    for (const child of children.reverse()) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
    }
    await Deno.remove(dir, { recursive: true });
  };
  try {
    const hostKey = join(dir, "host_key");
    const clientKey = join(dir, "client_key");
    await run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
    await run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", clientKey]);
    const authorized = join(dir, "authorized_keys");
    await Deno.copyFile(`${clientKey}.pub`, authorized);
    await Deno.chmod(authorized, 0o600);
    const sshdPort = freePort();
    const config = join(dir, "sshd_config");
    await Deno.writeTextFile(
      config,
      [
        `Port ${sshdPort}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${authorized}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PidFile none",
        "AllowTcpForwarding remote",
        "PermitRootLogin prohibit-password",
        "",
      ].join("\n"),
    );
    const daemon = new Deno.Command(sshd, {
      // -D: stay in the foreground; -e: log to stderr (discarded).
      args: ["-D", "-e", "-f", config],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    children.push(daemon);
    await waitUntil(
      () => listening(sshdPort),
      daemon,
      "sshd",
      `sshd to listen on 127.0.0.1:${sshdPort}`,
    );
    // ssh trusts exactly the host key made above: no blind acceptance, even on loopback.
    const knownHosts = join(dir, "known_hosts");
    await Deno.writeTextFile(
      knownHosts,
      `[127.0.0.1]:${sshdPort} ${(await Deno.readTextFile(`${hostKey}.pub`)).trim()}\n`,
    );
    const user = (await new Deno.Command("id", { args: ["-un"], stdout: "piped" }).output())
      .stdout;
    const forwarded = freePort();
    const client = new Deno.Command(ssh, {
      args: [
        "-N",
        "-T",
        "-i",
        clientKey,
        "-p",
        String(sshdPort),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        `UserKnownHostsFile=${knownHosts}`,
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "LogLevel=ERROR",
        "-R",
        `127.0.0.1:${forwarded}:127.0.0.1:${targetPort}`,
        `${new TextDecoder().decode(user).trim()}@127.0.0.1`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    children.push(client);
    await waitUntil(
      () => answering(forwarded),
      client,
      "ssh",
      `an answer through the forwarded port ${forwarded}`,
    );
    return {
      port: forwarded,
      cpuMs: () => treeCpuMs([daemon.pid, client.pid]),
      stop,
    };
  } catch (error) {
    await stop();
    return `the tunnel did not come up: ${(error as Error).message}`;
  }
}
