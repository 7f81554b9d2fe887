/**
 * bench:e2e's bare pipeline (bench/_bare_pipeline.ts) answers like the full path, so that its
 * requests/s are a fair ceiling: `hello, <body>` for every request, also when many are in
 * flight and when a body spans many reads.
 */
import assert from "node:assert/strict";
import { ROOT, type Service, startBarePipeline } from "./_services.ts";

Deno.test("the bare pipeline answers hello, <body> through its relay, 200 at once and large", async () => {
  const services: Service[] = [];
  try {
    const url = `http://127.0.0.1:${(await startBarePipeline(services)).port}/`;
    const post = async (body: string) => {
      const response = await fetch(url, { method: "POST", body });
      return await response.text();
    };
    assert.equal(await post("my friend"), "hello, my friend");
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => post(`n${i}`)));
    answers.forEach((answer, i) => assert.equal(answer, `hello, n${i}`));
    const large = "x".repeat(300_000);
    assert.equal(await post(large), `hello, ${large}`);
  } finally {
    for (const service of services.reverse()) await service.stop();
  }
});

Deno.test("bench:bare prints its usage on --help and refuses a bad role with status 2", async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["task", "bench:bare", ...args],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
  const text = new TextDecoder();
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(text.decode(help.stdout), /usage: deno task bench:bare relay \| back RELAY_PORT/);
  const bad = await run(["front", "x"]);
  assert.equal(bad.code, 2);
  assert.match(text.decode(bad.stderr), /bad arguments: front x\nusage: deno task bench:bare/);
  assert.equal(text.decode(bad.stdout), "");
});
