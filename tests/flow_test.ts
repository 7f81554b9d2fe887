// Unit tests of the invocation layer's flow control (src/invocation/_flow.ts): what a receiver
// hands its consumer, and the WINDOW credit it gives back for it.

import assert from "node:assert/strict";
import { GRANT_STEP, ReceiveQueue } from "../src/invocation/_flow.ts";

Deno.test("ReceiveQueue.takeReady hands over queued chunks in order, never waits", async () => {
  const grants: number[] = [];
  const queue = new ReceiveQueue((bytes) => grants.push(bytes));
  assert.equal(queue.takeReady(), undefined, "nothing queued yet");
  const a = new Uint8Array(GRANT_STEP).fill(1);
  const b = new Uint8Array(10).fill(2);
  queue.push(a, false);
  queue.push(b, false);
  assert.equal(queue.takeReady(), a);
  assert.deepEqual(grants, [GRANT_STEP], "a step taken is granted back");
  assert.equal(await queue.next(), b, "next() and takeReady() share one queue");
  assert.equal(queue.takeReady(), undefined);
  queue.push(new Uint8Array(0), true);
  assert.equal(queue.takeReady(), undefined, "the end is not a chunk");
  assert.equal(await queue.next(), undefined);
});

Deno.test("ReceiveQueue.takeReady leaves a failure to next()", async () => {
  const queue = new ReceiveQueue(() => {});
  queue.push(new Uint8Array(4), false);
  queue.fail(new Error("the sender went away"));
  assert.equal(queue.takeReady(), undefined);
  assert.equal((await queue.next())?.length, 4, "what came before the failure is still read");
  await assert.rejects(queue.next(), /the sender went away/);
});
