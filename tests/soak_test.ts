/**
 * Soak: steady load through relay, proxy and sat for STRATOS_SOAK_SECONDS (default 60; 600
 * with STRATOS_LONG=1). Every request must succeed, and no process may keep growing: resident
 * memory at the end stays within a bound of what it was after warming up.
 */
import assert from "node:assert/strict";
import { post, startNetwork, startSat, stopNetwork, whenServing } from "./_network.ts";
import type { Service } from "./_services.ts";

const SECONDS = Number(
  Deno.env.get("STRATOS_SOAK_SECONDS") ?? (Deno.env.get("STRATOS_LONG") === "1" ? 600 : 60),
);
const CONCURRENCY = 8;
/** Allowed growth of resident memory between the end of warm-up and the end of the soak. */
const GROWTH_BOUND_KIB = 48 * 1024;

Deno.test({
  name: `soak: ${SECONDS} s of steady load, no error, memory flat in every process`,
  ignore: SECONDS <= 0,
  fn: async () => {
    const net = await startNetwork();
    try {
      const sat = startSat(net, net.satCommand, { runnables: false });
      assert.equal((await whenServing(net)).status, 200);
      const processes: [string, Service][] = [["relay", net.relay], ["proxy", net.proxy], [
        "sat",
        sat,
      ]];
      let stop = false;
      let served = 0;
      const failures: string[] = [];
      const worker = async (w: number) => {
        for (let i = 0; !stop; i++) {
          const body = `friend ${w}-${i}`;
          const answer = await post(net, "/hello", body).catch((error) => ({
            status: 0,
            text: `${error}`,
          }));
          if (answer.status === 200 && answer.text === `hello, ${body}`) served++;
          else if (failures.length < 10) failures.push(`${answer.status} ${answer.text}`);
          else failures.push("");
        }
      };
      const load = Array.from({ length: CONCURRENCY }, (_, w) => worker(w));
      // Warm up for a tenth of the time (JIT, pools, buffers), then measure.
      await new Promise((r) => setTimeout(r, Math.max(2000, SECONDS * 100)));
      const before = await Promise.all(processes.map(([, p]) => p.memory()));
      await new Promise((r) => setTimeout(r, SECONDS * 900));
      const after = await Promise.all(processes.map(([, p]) => p.memory()));
      stop = true;
      await Promise.all(load);
      const report = processes.map(([name], i) =>
        `${name} ${Math.round(before[i]!.rssKiB / 1024)} -> ${
          Math.round(after[i]!.rssKiB / 1024)
        } MiB (peak ${Math.round(after[i]!.peakKiB / 1024)})`
      ).join(", ");
      assert.deepEqual(
        failures,
        [],
        `${failures.length} failed of ${served + failures.length}; proxy: ${
          net.proxy.stderr.slice(-2000)
        }; sat: ${sat.stderr.slice(-2000)}`,
      );
      assert.ok(served > SECONDS * 10, `only ${served} requests in ${SECONDS} s`);
      processes.forEach(([name], i) => {
        const growth = after[i]!.rssKiB - before[i]!.rssKiB;
        assert.ok(
          growth < GROWTH_BOUND_KIB,
          `${name} grew by ${Math.round(growth / 1024)} MiB: ${report}; ${served} served`,
        );
      });
    } finally {
      await stopNetwork(net);
    }
  },
});
