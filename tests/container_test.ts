/**
 * The container image, without a Docker engine: the Dockerfile passes dockerfilelint and holds
 * what the image promises (pinned Deno, non-root user, the launcher as entrypoint, state in a
 * volume), the compose files mirror the reference design's two halves, and the image's entry
 * commands (the same launcher, bundles and environment, mapped to temp folders) serve
 * `hello, my friend` as a non-root user, the sat configured as compose/sat.yaml does it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "yaml";
import { bundleServices } from "../scripts/bundle.ts";
import { ROOT, Service } from "./_services.ts";
import { helloThrough, shq, writeApp } from "./_ops_network.ts";

const DOCKERFILE = await Deno.readTextFile(join(ROOT, "Dockerfile"));
/** The user the entry commands run as when the test runs as root. */
const NON_ROOT_USER = "nobody";

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  return text.replace(/\\\n/g, " ").split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith("#"))
    .map((line) => {
      const [op, ...rest] = line.split(/\s+/);
      return { op: op!.toUpperCase(), args: rest.join(" ") };
    });
}

/** The final stage's instructions. */
function finalStage(): { op: string; args: string }[] {
  const all = instructions(DOCKERFILE);
  const lastFrom = all.findLastIndex((i) => i.op === "FROM");
  return all.slice(lastFrom);
}

/** ENV KEY=VALUE pairs of the final stage. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of finalStage().filter((i) => i.op === "ENV")) {
    for (const [, key, value] of args.matchAll(/(\w+)=(\S+)/g)) env[key!] = value!;
  }
  return env;
}

async function run(command: string, args: string[]): Promise<Deno.CommandOutput | undefined> {
  try {
    return await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

const dockerfilelint = await run("dockerfilelint", ["--version"]);

Deno.test("the Dockerfile passes dockerfilelint and builds one non-root image for every role", async (t) => {
  await t.step({
    name: "dockerfilelint Dockerfile" +
      (dockerfilelint?.success ? "" : " (skipped: dockerfilelint not found: npm install -g " +
        "dockerfilelint@1.8.0)"),
    ignore: !dockerfilelint?.success,
    fn: async () => {
      const lint = (await run("dockerfilelint", [join(ROOT, "Dockerfile")]))!;
      const out = new TextDecoder().decode(lint.stdout);
      assert.ok(lint.success, out);
      assert.match(out, /Issues: None found/);
    },
  });

  await t.step("the final stage: pinned Deno, non-root user, the launcher as entrypoint", () => {
    const stage = finalStage();
    const from = stage[0]!.args;
    assert.match(from, new RegExp(`^denoland/deno:[a-z]+-${Deno.version.deno}$`));
    const users = stage.filter((i) => i.op === "USER").map((i) => i.args);
    assert.equal(users.length, 1);
    assert.doesNotMatch(users[0]!, /^(root|0)(:|$)/);
    const order = stage.map((i) => i.op);
    assert.ok(order.indexOf("USER") < order.indexOf("ENTRYPOINT"), "USER comes before ENTRYPOINT");
    const entrypoint = stage.find((i) => i.op === "ENTRYPOINT")!.args;
    assert.deepEqual(JSON.parse(entrypoint), ["/bin/sh", "/app/stratos.sh"]);
    assert.ok(
      stage.some((i) => i.op === "COPY" && i.args === "scripts/stratos.sh /app/stratos.sh"),
    );
    assert.ok(
      stage.some((i) =>
        i.op === "COPY" && /^--from=build( \/build\/dist\/(relay|proxy|sat)\.js){3} \/app\/$/
          .test(i.args)
      ),
    );
    const env = imageEnv();
    assert.equal(env.STRATOS_HOME, "/var/lib/stratos");
    assert.equal(env.STRATOS_DIST, "/app");
    assert.ok(stage.some((i) => i.op === "VOLUME" && i.args.includes("/var/lib/stratos")));
    assert.doesNotMatch(DOCKERFILE, /--allow-all|\s-A\s|--allow-run/);
    // The build stage uses the same Deno.
    const build = instructions(DOCKERFILE).find((i) => i.op === "FROM")!.args;
    assert.equal(build, `denoland/deno:${Deno.version.deno} AS build`);
  });
});

Deno.test("the compose files are the two halves: relay + proxy, and a sat from FORWARDING_ADDRESS", async () => {
  // deno-lint-ignore no-explicit-any
  const load = async (file: string): Promise<any> =>
    parse(await Deno.readTextFile(join(ROOT, "compose", file)));
  const front = await load("relay-proxy.yaml");
  assert.deepEqual(Object.keys(front.services), ["relay", "proxy"]);
  assert.deepEqual(front.services.relay.command, ["relay"]);
  assert.deepEqual(front.services.proxy.command, ["proxy"]);
  assert.equal(front.services.proxy.environment.STRATOS_RELAY, "relay:4000");
  assert.ok(
    front.services.proxy.volumes.includes("../Directive.yaml:/srv/stratos/Directive.yaml:ro"),
  );
  const edge = await load("sat.yaml");
  assert.deepEqual(Object.keys(edge.services), ["sat"]);
  const sat = edge.services.sat;
  assert.deepEqual(sat.command, ["sat"]);
  assert.match(sat.environment.FORWARDING_ADDRESS, /^\$\{FORWARDING_ADDRESS:\?/);
  assert.match(sat.environment.STRATOS_TICKET, /^\$\{STRATOS_TICKET:-\}$/);
  assert.ok(sat.ports === undefined, "the sat opens no port");
  for (const service of [front.services.relay, front.services.proxy, sat]) {
    assert.equal(service.image, "stratos:latest");
    assert.ok(service.volumes.some((v: string) => v.endsWith(":/var/lib/stratos")));
  }
});

const uid = new TextDecoder().decode((await run("id", ["-u"]))?.stdout ?? new Uint8Array())
  .trim();
const runuser = uid === "0" ? await run("runuser", ["--help"]) : undefined;
const cannotSwitch = uid === "0" && !runuser?.success;

Deno.test({
  name: "the image's entry commands serve hello, my friend as a non-root user" +
    (cannotSwitch ? " (skipped: running as root and runuser is missing)" : ""),
  ignore: cannotSwitch,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "stratos-image-" });
    try {
      // The image's folders, under tmp: /app (bundles + launcher), /var/lib/stratos (state,
      // 0700, the user's), /srv/stratos (working folder: Directive and runnables).
      const app = join(tmp, "app");
      await bundleServices(app);
      await Deno.copyFile(join(ROOT, "scripts/stratos.sh"), join(app, "stratos.sh"));
      const state = join(tmp, "var-lib-stratos");
      const srv = join(tmp, "srv-stratos");
      const denoDir = join(tmp, "deno-dir");
      await writeApp(srv);
      await Deno.mkdir(state, { mode: 0o700 });
      await Deno.mkdir(denoDir);
      for (const dir of [tmp, app, srv, join(srv, "runnables")]) await Deno.chmod(dir, 0o755);
      const asRoot = uid === "0";
      if (asRoot) {
        for (const dir of [state, denoDir]) {
          const chown = await run("chown", [NON_ROOT_USER, dir]);
          assert.ok(chown?.success, `chown ${NON_ROOT_USER} ${dir} failed`);
        }
      }
      const mapped: Record<string, string> = { "/var/lib/stratos": state, "/app": app };
      const env: Record<string, string> = {};
      for (const [key, value] of Object.entries(imageEnv())) env[key] = mapped[value] ?? value;
      env.DENO_DIR = denoDir;
      env.STRATOS_DENO = Deno.execPath();
      const entry = (name: string, args: string[], extra: Record<string, string> = {}) => {
        const vars = Object.entries({ ...env, ...extra }).map(([k, v]) => shq(`${k}=${v}`));
        const user = asRoot ? `runuser -u ${NON_ROOT_USER} -- ` : "";
        return Service.shell(
          name,
          `cd ${shq(srv)} && exec ${user}env ${vars.join(" ")} /bin/sh ${
            shq(join(app, "stratos.sh"))
          } ` +
            args.map(shq).join(" "),
          {},
        );
      };
      const result = await helloThrough({
        relay: (args) => entry("relay", ["relay", ...args]),
        proxy: (args) => entry("proxy", ["proxy", ...args]),
        // As compose/sat.yaml: the address, relay and ticket come from the environment.
        sat: (args) => {
          const flag = (name: string) => args[args.indexOf(name) + 1]!;
          return entry("sat", ["sat"], {
            FORWARDING_ADDRESS: flag("--fwd"),
            STRATOS_RELAY: flag("--relay"),
            STRATOS_TICKET: flag("--ticket"),
          });
        },
      });
      assert.equal(result.text, "hello, my friend");
      const key = await Deno.stat(join(state, "sat/identity.key"));
      if (asRoot) {
        const nobody = new TextDecoder().decode((await run("id", ["-u", NON_ROOT_USER]))!.stdout);
        assert.equal(key.uid, Number(nobody.trim()), "the sat ran as the non-root user");
      }
      assert.equal(key.mode! & 0o777, 0o600);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
