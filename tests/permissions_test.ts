/**
 * Deno permissions: every task runs with its real flags (deno.json, and the narrow launcher
 * scripts/stratos.sh) on files outside the repository, and what a task was narrowed to is
 * enforced: an unlisted environment variable, a write outside the state folder, a connection to
 * an address its flags do not name.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, Service, taskArgs } from "./_services.ts";
import { HELLO_WASM, helloThrough, shq, writeApp } from "./_ops_network.ts";

const LAUNCHER = join(ROOT, "scripts/stratos.sh");
const SERVICES = ["relay", "proxy", "sat"];

/** Tries what a service might do and reports "ok", "denied" or another error's name. */
const PROBE = `
const [inside, outside, host, port] = Deno.args;
const out = {};
async function attempt(name, fn) {
  try {
    await fn();
    out[name] = "ok";
  } catch (error) {
    out[name] = error instanceof Deno.errors.PermissionDenied ||
        error instanceof Deno.errors.NotCapable ? "denied" : error.name;
  }
}
await attempt("env", () => Deno.env.get("STRATOS_PROBE_UNLISTED"));
await attempt("writeInside", async () => {
  await Deno.mkdir(inside, { recursive: true });
  await Deno.writeTextFile(inside + "/probe", "x");
});
await attempt("writeOutside", () => Deno.writeTextFile(outside, "x"));
await attempt("connect", async () => (await Deno.connect({ hostname: host, port: Number(port) })).close());
console.log(JSON.stringify(out));
`;

type ProbeResult = Record<"env" | "writeInside" | "writeOutside" | "connect", string>;

/** Runs the probe with `flags` (what comes between `deno run` and the entry point). */
async function probe(
  flags: string[],
  args: { inside: string; outside: string; host: string; port: number },
  env: Record<string, string> = {},
): Promise<ProbeResult> {
  const file = join(await Deno.makeTempDir({ prefix: "stratos-probe-" }), "probe.js");
  try {
    await Deno.writeTextFile(file, PROBE);
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, file, args.inside, args.outside, args.host, String(args.port)],
      cwd: ROOT,
      env: { STRATOS_PROBE_UNLISTED: "secret", ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(result.stdout);
    assert.ok(result.success, `probe failed: ${new TextDecoder().decode(result.stderr)}`);
    return JSON.parse(stdout);
  } finally {
    await Deno.remove(join(file, ".."), { recursive: true });
  }
}

/** The flags of a deno.json task, without `run` and the entry point. */
function taskFlags(task: string): string[] {
  const args = taskArgs(task);
  assert.equal(args[0], "run", `task ${task} is not "deno run ..."`);
  return args.slice(1, -1);
}

/** The flags the launcher computes for `role` with these service flags. */
async function launcherFlags(
  role: string,
  args: string[],
  env: Record<string, string>,
): Promise<string[]> {
  const result = await new Deno.Command("sh", {
    args: [LAUNCHER, "--print-flags", role, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(result.success, new TextDecoder().decode(result.stderr));
  return new TextDecoder().decode(result.stdout).trim().split("\n");
}

/** An unused loopback port, for a connection that must be refused before it is tried. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The tasks that run a program of src/ (services and tools): `deno run FLAGS src/NAME.ts`. */
const SRC_TASKS = Object.entries(
  JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks as Record<string, string>,
).filter(([, line]) => /^deno run .* src\/\w+\.ts$/.test(line)).map(([name]) => name);

Deno.test("no task of src/ may run subprocesses, load native code or do everything", () => {
  assert.ok(SRC_TASKS.length >= 5, SRC_TASKS.join(" "));
  for (const task of SRC_TASKS) {
    const flags = taskFlags(task);
    for (const flag of flags) {
      assert.doesNotMatch(flag, /^(-A|--allow-all|--allow-run|--allow-ffi|--allow-sys)(=|$)/);
    }
  }
});

Deno.test("the launcher keeps each task's flags and narrows only read, write and net", async () => {
  const env = { STRATOS_HOME: "/tmp/stratos-x" };
  const narrowed = /^--(no-prompt|allow-read|allow-write|allow-net)(=|$)/;
  for (const role of SERVICES) {
    const fromTask = taskFlags(role).filter((f) => !narrowed.test(f));
    const fromLauncher = await launcherFlags(role, [], env);
    assert.deepEqual(
      fromLauncher.filter((f) => !narrowed.test(f)),
      [...fromTask, "--config", join(ROOT, "deno.json")],
    );
    assert.ok(fromLauncher.includes(`--allow-write=/tmp/stratos-x/${role}`));
  }
});

Deno.test("the launcher takes addresses from --config as the services do: flag, env, file", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "stratos-perm-" });
  try {
    const env = { STRATOS_HOME: join(tmp, "home") };
    const yaml = join(tmp, "sat.yaml");
    await Deno.writeTextFile(
      yaml,
      'relay: "10.1.1.1:4000" # the relay\nallow-hosts: a.com,b.com\n',
    );
    const json = join(tmp, "relay.json");
    await Deno.writeTextFile(json, '{"listen": "127.0.0.1:4500", "metrics": "127.0.0.1:9100"}');
    const net = (flags: string[]) => flags.find((f) => f.startsWith("--allow-net"));
    assert.equal(
      net(await launcherFlags("sat", ["--config", yaml], env)),
      "--allow-net=10.1.1.1:4000,a.com,b.com",
    );
    assert.equal(
      net(await launcherFlags("sat", ["--config", yaml], { ...env, STRATOS_RELAY: "10.2.2.2:1" })),
      "--allow-net=10.2.2.2:1,a.com,b.com",
    );
    const relay = await launcherFlags("relay", [`--config=${json}`], env);
    assert.equal(net(relay), "--allow-net=127.0.0.1:4500,127.0.0.1:9100");
    assert.ok(relay.includes(`--allow-read=${join(tmp, "home/relay")},${json}`));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("every task works with its real flags on files outside the repository", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "stratos-perm-" });
  try {
    const app = join(tmp, "app");
    const directive = await writeApp(app);
    const pinned = join(tmp, "pinned");
    await Deno.mkdir(pinned);
    await Deno.copyFile(HELLO_WASM, join(pinned, "helloworld-rs.wasm"));
    const staticDir = join(tmp, "static");
    await Deno.mkdir(staticDir);
    await Deno.writeTextFile(join(staticDir, "greeting.txt"), "hi");
    const env = (name: string) => ({ STRATOS_HOME: join(tmp, `${name}-home`) });

    await t.step(
      "relay, proxy (Directive in /tmp) and sat (--runnables, --static in /tmp)",
      async () => {
        const result = await helloThrough({
          relay: (args) => Service.start("relay", args, env("relay")),
          proxy: (args) => Service.start("proxy", args, env("proxy")),
          sat: (args) => Service.start("sat", args, env("sat")),
        }, {
          proxyArgs: ["--directive", directive],
          satArgs: ["--runnables", pinned, "--static", staticDir],
        });
        assert.equal(result.text, "hello, my friend");
      },
    );

    await t.step("standalone sat with a module in /tmp", async () => {
      const module = join(tmp, "standalone.wasm");
      await Deno.copyFile(HELLO_WASM, module);
      const sat = Service.start("sat", [module, "--http", "127.0.0.1:0"], env("standalone"));
      try {
        const [, port] = await sat.line(/^listening on 127\.0\.0\.1:(\d+)$/);
        const response = await fetch(`http://127.0.0.1:${port}/`, {
          method: "POST",
          body: "my friend",
        });
        assert.equal(await response.text(), "hello, my friend");
      } finally {
        await sat.stop();
      }
    });

    await t.step("proxy --check on a Directive in /tmp", async () => {
      const check = Service.start("proxy", ["--check", "--directive", directive], env("check"));
      assert.equal((await check.exited()).code, 0, check.stderr);
      assert.deepEqual(check.lines.filter((l) => l.length > 0), [`${directive}: ok`]);
    });

    await t.step("demo with a Directive in /tmp", async () => {
      const demo = Service.start("demo", ["--http", "127.0.0.1:0", "--directive", directive], {});
      try {
        const [, url] = await demo.line(/^try: {2}curl -d "my friend" (\S+)$/, 30_000);
        const response = await fetch(`http://${url}`, { method: "POST", body: "my friend" });
        assert.equal(await response.text(), "hello, my friend");
      } finally {
        await demo.stop();
      }
    });

    await t.step("vectors on a file in /tmp", async () => {
      const file = join(tmp, "vectors.json");
      await Deno.copyFile(join(ROOT, "tests/vectors/cacophony.json"), file);
      const vectors = Service.start("vectors", [file], {});
      assert.equal((await vectors.exited()).code, 0, vectors.stderr);
      assert.match(vectors.lines.join("\n"), /\d+ passed, 0 failed/);
    });

    await t.step(
      "the narrow launcher: relay, proxy (Directive in /tmp), sat (delivered)",
      async () => {
        const launch = (role: string) => (args: string[]) =>
          Service.shell(
            role,
            `cd ${shq(app)} && exec sh ${shq(LAUNCHER)} ${role} ${args.map(shq).join(" ")}`,
            { ...env(`strict-${role}`), DENO_NO_UPDATE_CHECK: "1" },
          );
        const result = await helloThrough({
          relay: launch("relay"),
          proxy: launch("proxy"),
          sat: launch("sat"),
        });
        assert.equal(result.text, "hello, my friend");
        // The delivered runnable was cached inside the sat's state folder, the one place it may
        // write.
        const cached = [...Deno.readDirSync(join(tmp, "strict-sat-home/sat/runnables"))];
        assert.equal(cached.length, 1);
      },
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("tasks refuse environment variables they do not list (the proxy reads any)", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "stratos-perm-" });
  try {
    const target = { inside: join(tmp, "in"), outside: join(tmp, "out"), host: "127.0.0.1" };
    const port = freePort();
    for (const task of SRC_TASKS.filter((t) => t !== "proxy")) {
      const result = await probe(taskFlags(task), { ...target, port });
      assert.equal(result.env, "denied", `task ${task}: ${JSON.stringify(result)}`);
    }
    // env(NAME) in a Directive may name any variable: see README "Permissions".
    assert.equal((await probe(taskFlags("proxy"), { ...target, port })).env, "ok");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("the launcher confines writes to the state folder, and net to the flags' addresses", async (t) => {
  const tmp = await Deno.makeTempDir({ prefix: "stratos-perm-" });
  try {
    const env = { STRATOS_HOME: join(tmp, "home") };
    const outside = join(tmp, "outside.txt");
    const relayPort = freePort();
    const otherPort = freePort();
    const cases: [string, string[]][] = [
      ["relay", ["--listen", `127.0.0.1:${relayPort}`]],
      ["proxy", ["--relay", `127.0.0.1:${relayPort}`, "--http", `127.0.0.1:${relayPort + 1}`]],
      ["sat", ["--relay", `127.0.0.1:${relayPort}`, "--allow-hosts", "api.example.com"]],
      ["sat", [join(tmp, "standalone.wasm"), "--http", `127.0.0.1:${relayPort}`]],
    ];
    for (const [role, args] of cases) {
      await t.step(`${role} ${args.join(" ")}`, async () => {
        const flags = await launcherFlags(role, args, env);
        const inside = join(tmp, "home", role, "probe-dir");
        const result = await probe(
          flags,
          { inside, outside, host: "127.0.0.1", port: otherPort },
          env,
        );
        assert.equal(result.writeInside, "ok", JSON.stringify(result));
        assert.equal(result.writeOutside, "denied", JSON.stringify(result));
        assert.equal(result.connect, "denied", JSON.stringify(result));
        assert.equal(result.env, role === "proxy" ? "ok" : "denied", JSON.stringify(result));
        // Another role's state folder is outside too.
        const other = role === "relay" ? "sat" : "relay";
        const cross = await probe(flags, {
          inside: join(tmp, "home", other, "probe-dir"),
          outside,
          host: "127.0.0.1",
          port: relayPort,
        }, env);
        assert.equal(cross.writeInside, "denied", JSON.stringify(cross));
      });
    }
    await t.step("a sat may reach the --allow-hosts its runnables fetch from", async () => {
      const flags = await launcherFlags("sat", ["--allow-hosts", "127.0.0.1:" + otherPort], env);
      const result = await probe(flags, {
        inside: join(tmp, "home/sat/x"),
        outside,
        host: "127.0.0.1",
        port: otherPort,
      }, env);
      // Allowed, so the connection is tried and refused by the OS (nothing listens there).
      assert.equal(result.connect, "ConnectionRefused");
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
