import assert from "node:assert/strict";
import { Deadlines } from "../src/proxy/_deadlines.ts";

Deno.test("deadlines fire in order after their time unless cleared; one timer for all", async () => {
  const deadlines = new Deadlines(60);
  const fired: number[] = [];
  const started = performance.now();
  const handles = [0, 1, 2, 3].map((n) => deadlines.add(() => fired.push(n)));
  handles[1]!.clear();
  handles[0]!.clear(); // the front ones done: the queue drops them
  await new Promise((r) => setTimeout(r, 20));
  const late = deadlines.add(() => fired.push(4));
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(fired, [2, 3, 4]);
  assert.ok(performance.now() - started >= 60);
  late.clear(); // clearing after it fired changes nothing
  const last = deadlines.add(() => fired.push(5));
  last.clear();
  await new Promise((r) => setTimeout(r, 120)); // the timer fires over an empty queue, and stops
  assert.deepEqual(fired, [2, 3, 4]);
});

Deno.test("a burst of deadlines that all finish arms one timer, and none once it has fired", async () => {
  const realSetTimeout = globalThis.setTimeout;
  let armed = 0;
  // Counts the timers Deadlines arms (the test's own waits go to the real setTimeout).
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    armed++;
    return realSetTimeout(fn, ms);
  }) as typeof setTimeout;
  const wait = (ms: number) => new Promise((r) => realSetTimeout(r, ms));
  try {
    const deadlines = new Deadlines(40);
    let fired = 0;
    for (let burst = 0; burst < 3; burst++) {
      const handles = Array.from({ length: 10 }, () => deadlines.add(() => fired++));
      for (const handle of handles) handle.clear();
    }
    assert.equal(armed, 1);
    await wait(100); // it fired with nothing due: not armed again
    assert.equal(armed, 1);
    const due = deadlines.add(() => fired++);
    assert.equal(armed, 2);
    await wait(100);
    assert.equal(fired, 1);
    due.clear();
    assert.equal(armed, 2);
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
});

Deno.test("a timer left armed by deadlines does not keep the process alive", async () => {
  const module = new URL("../src/proxy/_deadlines.ts", import.meta.url).href;
  const script = `import { Deadlines } from "${module}";
    const deadlines = new Deadlines(60_000);
    deadlines.add(() => console.log("fired")).clear();
    deadlines.add(() => console.log("fired"));
    console.log("done");`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // 60 s if the timer held the process: kill it well before, and fail.
  const timer = setTimeout(() => child.kill(), 20_000);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.equal(new TextDecoder().decode(stdout), "done\n");
});
