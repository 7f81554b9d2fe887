/**
 * The bundled sat (dist/sat.js) on an arm64 Deno under qemu-user, attached to an x86-64 relay
 * and proxy, answers `hello, my friend`.
 *
 * Needs `qemu-aarch64-static` (Debian: qemu-user-static) and the arm64 C library
 * (`dpkg --add-architecture arm64 && apt-get update && apt-get install libc6:arm64
 * libgcc-s1:arm64`); without them the test is skipped, its name saying what is missing. The
 * arm64 Deno (same version as this one) comes from npm, `@deno/linux-arm64-glibc`, fetched once
 * with `npm pack` into dist/.arm64-deno/, or from STRATOS_ARM64_DENO.
 *
 * Under emulation the sat takes ~30 s to attach on an idle 2-core machine, more on a loaded
 * one; the test allows 150 s. `.ci/run` installs what it needs, so CI always runs it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { bundleRunFlags, bundleServices } from "../scripts/bundle.ts";
import { ROOT, Service } from "./_services.ts";
import { helloThrough, shq, writeApp } from "./_ops_network.ts";

const QEMU = "qemu-aarch64-static";
const ARM64_LOADER = "/lib/ld-linux-aarch64.so.1";

async function onPath(command: string): Promise<boolean> {
  const found = await new Deno.Command("sh", {
    args: ["-c", `command -v ${command}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return found.success;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

const missing = Deno.build.arch !== "x86_64"
  ? `the host is ${Deno.build.arch}, not x86_64`
  : !(await onPath(QEMU))
  ? `${QEMU} not found (apt-get install qemu-user-static)`
  : !(await exists(ARM64_LOADER))
  ? `${ARM64_LOADER} not found (dpkg --add-architecture arm64 && apt-get update && ` +
    "apt-get install libc6:arm64 libgcc-s1:arm64)"
  : undefined;

/** An arm64 deno of this Deno's version: STRATOS_ARM64_DENO, or fetched once from npm. */
async function arm64Deno(): Promise<string> {
  const given = Deno.env.get("STRATOS_ARM64_DENO");
  if (given) return given;
  const version = Deno.version.deno;
  const dir = join(ROOT, "dist/.arm64-deno", version);
  const deno = join(dir, "package/deno");
  if (await exists(deno)) return deno;
  await Deno.mkdir(dir, { recursive: true });
  const pack = await new Deno.Command("npm", {
    args: ["pack", "--silent", `@deno/linux-arm64-glibc@${version}`],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const tarball = new TextDecoder().decode(pack.stdout).trim().split("\n").at(-1) ?? "";
  if (!pack.success || !tarball) {
    throw new Error(
      `npm pack @deno/linux-arm64-glibc@${version} failed (set STRATOS_ARM64_DENO to an arm64 ` +
        `deno instead):\n${new TextDecoder().decode(pack.stderr)}`,
    );
  }
  const untar = await new Deno.Command("tar", { args: ["xzf", tarball], cwd: dir }).output();
  assert.ok(untar.success, `tar xzf ${join(dir, tarball)} failed`);
  await Deno.remove(join(dir, tarball));
  return deno;
}

Deno.test({
  name: "the bundled sat on arm64 Deno under qemu-user serves an x86-64 relay and proxy" +
    (missing ? ` (skipped: ${missing})` : ""),
  ignore: missing !== undefined,
  fn: async () => {
    const deno = await arm64Deno();
    const version = await new Deno.Command(QEMU, { args: ["-L", "/", deno, "--version"] })
      .output();
    assert.match(
      new TextDecoder().decode(version.stdout),
      new RegExp(`^deno ${Deno.version.deno.replaceAll(".", "\\.")} .*aarch64-unknown-linux`),
    );
    const tmp = await Deno.makeTempDir({ prefix: "stratos-arm64-" });
    try {
      await bundleServices(tmp);
      await writeApp(tmp);
      const env = { STRATOS_HOME: join(tmp, "home"), DENO_NO_UPDATE_CHECK: "1" };
      const x86 = (role: string, flags: string[]) => (args: string[]) =>
        Service.shell(
          role,
          `cd ${shq(tmp)} && exec ${shq(Deno.execPath())} run ${flags.map(shq).join(" ")} ` +
            `${role}.js ${args.map(shq).join(" ")}`,
          env,
        );
      const satFlags = ["--cached-only", ...await bundleRunFlags("sat")];
      const result = await helloThrough({
        relay: x86("relay", await bundleRunFlags("relay")),
        proxy: x86("proxy", await bundleRunFlags("proxy")),
        sat: (args) =>
          Service.shell(
            "sat (arm64)",
            `cd ${shq(tmp)} && exec ${QEMU} -L / ${shq(deno)} run ${satFlags.map(shq).join(" ")}` +
              ` sat.js ${args.map(shq).join(" ")}`,
            { ...env, DENO_DIR: join(tmp, "arm64-deno-dir") },
          ),
      }, { satArgs: ["--workers", "1"], ms: 150_000 });
      assert.equal(result.text, "hello, my friend");
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
