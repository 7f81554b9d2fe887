// deno-lint-ignore-file no-console -- a report script: printing is its job.
/**
 * Channel figures as a table: transport MB/s per payload size and handshakes per second, for
 * both crypto backends, beside baselines measured in the same run (a plain memory copy and
 * the raw AEAD call), so the ratios hold on a shared, noisy machine.
 *
 * Run: deno run --allow-read bench/report.ts   (part of `deno task bench`)
 *
 * @module
 */

import { BACKENDS } from "../src/channel/backends.ts";
import type { TransportSession } from "../src/channel/transport_session.ts";
import { secureHandshake, sessionPair, SIZES, trustedNodes } from "./_fixtures.ts";

const RUN_MS = Number(Deno.args[0] ?? 400);

/** Calls `fn` repeatedly for RUN_MS after a warm-up; returns calls per second. */
async function rate(fn: () => unknown | Promise<unknown>): Promise<number> {
  const warmUntil = performance.now() + RUN_MS / 4;
  while (performance.now() < warmUntil) await fn();
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < RUN_MS) {
    for (let i = 0; i < 8; i++) await fn();
    calls += 8;
    now = performance.now();
  }
  return calls / ((now - start) / 1000);
}

/** Frames opened per second; the frames are sealed in batches outside the timed part. */
async function openRate(
  sender: TransportSession,
  receiver: TransportSession,
  payload: Uint8Array,
): Promise<number> {
  let opened = 0;
  let elapsed = 0;
  const warm = Array.from({ length: 64 }, () => sender.seal(payload));
  for (const frame of warm) receiver.open(frame);
  while (elapsed < RUN_MS) {
    const batch = Array.from({ length: 256 }, () => sender.seal(payload));
    const start = performance.now();
    for (const frame of batch) receiver.open(frame);
    elapsed += performance.now() - start;
    opened += batch.length;
    await Promise.resolve();
  }
  return opened / (elapsed / 1000);
}

const mb = (perSecond: number, bytes: number) => (perSecond * bytes) / 1e6;
const fmt = (x: number) => x >= 100 ? x.toFixed(0) : x.toFixed(1);

console.log(`Stratos channel benchmark (Deno ${Deno.version.deno}, one core, ChaChaPoly+SHA256)\n`);
console.log("transport throughput, MB/s (ratio to the raw AEAD call of the same backend)");
console.log("size     memcpy   | backend   raw AEAD  seal            open            seal+open");
for (const { label, bytes } of SIZES) {
  const payload = crypto.getRandomValues(new Uint8Array(bytes));
  const copy = new Uint8Array(bytes);
  const memcpy = mb(await rate(() => copy.set(payload)), bytes);
  let first = true;
  for (const backend of BACKENDS) {
    const aead = backend.cipher("ChaChaPoly");
    const key = crypto.getRandomValues(new Uint8Array(32));
    const ad = new Uint8Array(9);
    let n = 0n;
    const raw = mb(await rate(() => aead.encrypt(key, n++, ad, payload)), bytes);
    const [sender, receiver] = sessionPair(backend);
    const seal = mb(await rate(() => sender.seal(payload)), bytes);
    const open = mb(await openRate(sender, receiver, payload), bytes);
    const both = mb(await rate(() => receiver.open(sender.seal(payload))), bytes);
    const ratio = (x: number) => `${fmt(x)} (${(x / raw).toFixed(2)}x)`.padEnd(16);
    console.log(
      `${(first ? label : "").padEnd(9)}${(first ? fmt(memcpy) : "").padEnd(9)}| ` +
        `${backend.name.padEnd(10)}${fmt(raw).padEnd(10)}${ratio(seal)}${ratio(open)}${
          ratio(both)
        }`,
    );
    first = false;
  }
}

console.log("\nhandshakes per second (both ends in this process)");
const nodes = await trustedNodes();
for (const backend of BACKENDS) {
  const dh = await rate(() =>
    backend.dh.dh(backend.dh.generateKeyPair(), backend.dh.generateKeyPair().publicKey)
  );
  const hs = await rate(() => secureHandshake(nodes, backend));
  console.log(
    `${backend.name.padEnd(10)} complete mutual-auth XX (identities + trust): ${fmt(hs)}/s` +
      `   baseline: keygen+X25519 pairs ${fmt(dh)}/s (an XX costs 4 keygens-equivalent + 6 DH)`,
  );
}
