/**
 * `deno task bundle`: dist/relay.js, dist/proxy.js and dist/sat.js each run on their own from an
 * empty folder, with an empty Deno cache and `--cached-only` (so nothing is downloaded), and
 * together serve `hello, my friend`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { bundleRunFlags, bundleServices } from "../scripts/bundle.ts";
import { Service } from "./_services.ts";
import { helloThrough, shq, writeApp } from "./_ops_network.ts";

Deno.test("the bundles run relay, proxy and sat from an empty folder, offline, and answer hello, my friend", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "stratos-bundle-" });
  try {
    const built = join(tmp, "built");
    const written = await bundleServices(built);
    assert.deepEqual(written.map((f) => f.slice(built.length + 1)), [
      "relay.js",
      "proxy.js",
      "sat.js",
    ]);
    const app = join(tmp, "app");
    await Deno.mkdir(app);
    for (const role of ["relay", "proxy", "sat"]) {
      const text = await Deno.readTextFile(join(built, `${role}.js`));
      // The first line says how to run it; the worker is inside, not beside it.
      assert.equal(
        text.slice(0, text.indexOf("\n")),
        `// Run: deno run ${(await bundleRunFlags(role)).join(" ")} ${role}.js`,
      );
      assert.ok(!text.includes("_worker.ts"));
      await Deno.copyFile(join(built, `${role}.js`), join(app, `${role}.js`));
    }
    await writeApp(app);
    const env = {
      STRATOS_HOME: join(tmp, "home"),
      DENO_DIR: join(tmp, "empty-deno-dir"),
      DENO_NO_UPDATE_CHECK: "1",
    };
    const starter = async (role: string) => {
      const flags = ["--cached-only", ...await bundleRunFlags(role)];
      return (args: string[]) =>
        Service.shell(
          role,
          `cd ${shq(app)} && exec ${shq(Deno.execPath())} run ${flags.map(shq).join(" ")} ` +
            `${role}.js ${args.map(shq).join(" ")}`,
          env,
        );
    };
    const result = await helloThrough({
      relay: await starter("relay"),
      proxy: await starter("proxy"),
      sat: await starter("sat"),
    });
    assert.equal(result.text, "hello, my friend");
    // The sat ran what the proxy delivered (no --runnables), in its permission-less workers.
    assert.ok(!result.satArgs.includes("--runnables"));
    const left = [...Deno.readDirSync(app)].map((e) => e.name).sort();
    assert.deepEqual(left, ["Directive.yaml", "proxy.js", "relay.js", "runnables", "sat.js"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
