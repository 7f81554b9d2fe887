/**
 * A flood of links that never finish their handshake costs the flooder, not the proxy: past
 * MAX_PENDING_HANDSHAKES the proxy closes new links at once, counts them, and keeps serving.
 */
import assert from "node:assert/strict";
import { connectRelay } from "../src/link/mod.ts";
import { MAX_PENDING_HANDSHAKES } from "../src/proxy/mod.ts";
import { startNetwork, stopNetwork } from "./_network.ts";

Deno.test("links beyond the handshakes in progress are closed at once and counted", async () => {
  const net = await startNetwork();
  const flooder = await connectRelay({ hostname: "127.0.0.1", port: net.relayPort });
  try {
    const links = await Promise.all(
      Array.from({ length: MAX_PENDING_HANDSHAKES + 8 }, () => flooder.connect(net.fwd)),
    );
    // The extra links end without a byte; the first ones wait for a handshake that never comes.
    const ended = await Promise.all(links.map((link) =>
      Promise.race([
        link.receive().then(() => true, () => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000)),
      ])
    ));
    assert.equal(ended.filter(Boolean).length, 8);
    const page = await (await fetch(`http://127.0.0.1:${net.httpPort}/metrics`)).text();
    assert.match(page, /^stratos_handshakes_total\{result="refused",reason="busy"\} 8$/m);
    const missing = await fetch(`http://127.0.0.1:${net.httpPort}/nope`, { method: "POST" });
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    flooder.close();
    await stopNetwork(net);
  }
});
