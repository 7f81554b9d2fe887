import { BACKENDS } from "../src/channel/backends.ts";
import { secureHandshake, sessionPair, SIZES, trustedNodes } from "./_fixtures.ts";

const nodes = await trustedNodes();

for (const { label, bytes } of SIZES) {
  const payload = crypto.getRandomValues(new Uint8Array(bytes));
  const copy = new Uint8Array(bytes);
  Deno.bench(`memory copy ${label}`, { group: `transport ${label}`, baseline: true }, () => {
    copy.set(payload);
  });
  for (const backend of BACKENDS) {
    const aead = backend.cipher("ChaChaPoly");
    const key = crypto.getRandomValues(new Uint8Array(32));
    const ad = new Uint8Array(9);
    let n = 0n;
    Deno.bench(`${backend.name} raw AEAD encrypt ${label}`, { group: `transport ${label}` }, () => {
      aead.encrypt(key, n++, ad, payload);
    });
    const [sender, receiver] = sessionPair(backend);
    Deno.bench(`${backend.name} seal ${label}`, { group: `transport ${label}` }, () => {
      sender.seal(payload);
    });
    Deno.bench(`${backend.name} seal + open ${label}`, { group: `transport ${label}` }, () => {
      receiver.open(sender.seal(payload));
    });
  }
}

for (const backend of BACKENDS) {
  Deno.bench(`${backend.name} X25519 dh (baseline unit)`, { group: "handshake" }, () => {
    backend.dh.dh(backend.dh.generateKeyPair(), backend.dh.generateKeyPair().publicKey);
  });
  Deno.bench(`${backend.name} mutual-auth XX channel set-up`, { group: "handshake" }, async () => {
    await secureHandshake(nodes, backend);
  });
}
