import assert from "node:assert/strict";
import { join } from "node:path";
import { type CommandSpec, parseFlags, UsageError } from "../src/cli/mod.ts";
import { readConfigFile } from "../src/cli/config_file.ts";
import { Service } from "./_services.ts";

const COMMAND: CommandSpec = {
  usage: "test",
  summary: "test",
  flags: [
    { name: "relay", type: "string", default: "127.0.0.1:4000", env: "T_RELAY", description: "" },
    { name: "http", type: "string", default: "0.0.0.0:8080", description: "" },
    { name: "check", type: "boolean", description: "" },
    { name: "config", type: "string", description: "" },
  ],
};

Deno.test("a config file fills flags; the command line and the environment win over it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "proxy.yaml");
    await Deno.writeTextFile(
      file,
      "relay: relay.example:4000\nhttp: 127.0.0.1:9000\ncheck: true\n",
    );
    const fromFile = await readConfigFile(file, COMMAND);
    assert.deepEqual(fromFile, {
      relay: "relay.example:4000",
      http: "127.0.0.1:9000",
      check: true,
    });
    const noEnv = () => undefined;
    assert.deepEqual(parseFlags([], COMMAND, noEnv, fromFile), {
      relay: "relay.example:4000",
      http: "127.0.0.1:9000",
      check: true,
      config: undefined,
    });
    const flags = parseFlags(
      ["--http", "127.0.0.1:1"],
      COMMAND,
      (n) => n === "T_RELAY" ? "env:4000" : undefined,
      fromFile,
    );
    assert.equal(flags === "help" ? "" : flags.http, "127.0.0.1:1");
    assert.equal(flags === "help" ? "" : flags.relay, "env:4000");

    const json = join(dir, "sat.json");
    await Deno.writeTextFile(json, JSON.stringify({ http: 8081 }));
    assert.deepEqual(await readConfigFile(json, COMMAND), { http: "8081" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a config file with an unknown key or a wrong type is refused, naming both", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, RegExp][] = [
      ["rely: x\n", /unknown key "rely" \(did you mean "relay"\?\)/],
      ["zzz: x\n", /unknown key "zzz"; the keys are the flags: relay, http, check/],
      ["check: yes please\n", /"check" takes true or false/],
      ["http: [1, 2]\n", /"http" takes a value like its flag/],
      ["- a\n- b\n", /expected a map of flag names to values/],
      ["a: [\n", /not valid YAML or JSON/],
    ];
    for (const [text, message] of cases) {
      const file = join(dir, "bad.yaml");
      await Deno.writeTextFile(file, text);
      await assert.rejects(
        readConfigFile(file, COMMAND),
        (e: Error) =>
          e instanceof UsageError && message.test(e.message) && e.message.includes(file),
        text,
      );
    }
    await assert.rejects(readConfigFile(join(dir, "missing.yaml"), COMMAND), /cannot read it/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task relay --config FILE listens where the file says", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "relay.yaml");
    await Deno.writeTextFile(file, "listen: 127.0.0.1:0\nlog-level: warn\n");
    const relay = Service.start("relay", ["--config", file], { STRATOS_HOME: join(dir, "home") });
    try {
      await relay.line(/^listening on 127\.0\.0\.1:\d+$/);
    } finally {
      await relay.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
