/**
 * How the proxy finds the runnables and static files a Directive names, and what it refuses.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DirectiveError } from "../src/directive/mod.ts";
import { loadDeployment, RunnableLocator } from "../src/proxy/mod.ts";
import { sha256Hex } from "../src/invocation/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const HELLO = await Deno.readFile(join(ROOT, "runnables/helloworld-rs/helloworld-rs.wasm"));

function directive(steps: string, more = ""): string {
  return `identifier: com.example.load
appVersion: v0.1.0
atmoVersion: v0.4.0
${more}handlers:
  - type: request
    resource: /x
    method: POST
    steps:
${steps}`;
}

async function folder(files: Record<string, Uint8Array | string>): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
  }
  return dir;
}

Deno.test("runnables are found in Atmo's places, namespaced ones in their folder", async () => {
  const locator = new RunnableLocator("/d");
  assert.deepEqual(locator.candidates("hello"), [
    "/d/runnables/hello/hello.wasm",
    "/d/runnables/hello.wasm",
    "/d/hello/hello.wasm",
  ]);
  assert.deepEqual(locator.candidates("db::get-user"), [
    "/d/runnables/db/get-user/get-user.wasm",
    "/d/runnables/db/get-user.wasm",
    "/d/db/get-user/get-user.wasm",
  ]);
  assert.deepEqual(new RunnableLocator("/d", "/r").candidates("hello"), [
    "/r/hello/hello.wasm",
    "/r/hello.wasm",
  ]);
  const dir = await folder({
    "Directive.yaml": directive("      - fn: hello\n      - fn: db::hello\n      - fn: proj\n"),
    "runnables/hello.wasm": HELLO,
    "runnables/db/hello/hello.wasm": HELLO,
    "proj/proj.wasm": HELLO,
  });
  try {
    const deployment = await loadDeployment(join(dir, "Directive.yaml"));
    const sha = await sha256Hex(HELLO);
    assert.deepEqual(deployment.manifest.runnables, { "db::hello": sha, hello: sha, proj: sha });
    assert.equal(deployment.files.size, 1, "one file per digest");
    assert.equal(deployment.sources.get("db::hello"), join(dir, "runnables/db/hello/hello.wasm"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an fn without a file is a Directive problem at its line, with a did-you-mean", async () => {
  const dir = await folder({
    "Directive.yaml": directive("      - fn: helo\n"),
    "runnables/hello/hello.wasm": HELLO,
  });
  try {
    const path = join(dir, "Directive.yaml");
    await assert.rejects(loadDeployment(path), (error: Error) => {
      assert.ok(error instanceof DirectiveError);
      assert.match(
        error.message,
        new RegExp(`^${path}:9:\\d+: handlers\\[0\\]\\.steps\\[0\\]\\.fn: `),
      );
      assert.match(error.message, /"hello"/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("static files travel by digest; symbolic links are refused", async () => {
  const dir = await folder({
    "Directive.yaml": directive("      - fn: hello\n"),
    "runnables/hello.wasm": HELLO,
    "static/a.txt": "A",
    "static/sub/b.txt": "B",
  });
  try {
    const path = join(dir, "Directive.yaml");
    const deployment = await loadDeployment(path);
    assert.deepEqual(deployment.manifest.static, {
      "a.txt": await sha256Hex(new TextEncoder().encode("A")),
      "sub/b.txt": await sha256Hex(new TextEncoder().encode("B")),
    });
    await Deno.symlink("/etc/passwd", join(dir, "static/leak"));
    await assert.rejects(loadDeployment(path), /static\/leak is a symbolic link/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("env(NAME) values are read by the proxy; an unset one is refused by name", async () => {
  const more = `authentication:
  domains:
    api.example.com:
      headerType: bearer
      value: env(API_TOKEN)
capabilities:
  http:
    rules:
      allowedDomains: [api.example.com]
`;
  const dir = await folder({
    "Directive.yaml": directive("      - fn: hello\n", more),
    "runnables/hello.wasm": HELLO,
  });
  try {
    const path = join(dir, "Directive.yaml");
    const deployment = await loadDeployment(path, {
      env: (name) => name === "API_TOKEN" ? "t0k3n" : undefined,
    });
    assert.deepEqual(deployment.manifest.config.authHeaders, {
      "api.example.com": "Bearer t0k3n",
    });
    assert.deepEqual(deployment.manifest.config.allowedHosts, ["api.example.com"]);
    await assert.rejects(
      loadDeployment(path, { env: () => undefined }),
      /authentication\.domains\.api\.example\.com\.value: env\(API_TOKEN\) is not set; export API_TOKEN/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
