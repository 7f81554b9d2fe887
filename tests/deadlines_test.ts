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
  last.clear(); // nothing pending: no timer left behind (the test's sanitizer checks)
});
