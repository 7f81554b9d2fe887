/**
 * Native (`node:crypto`) against portable (@noble/*) crypto backends.
 *
 * Each AEAD group is named with its message size in bytes, so throughput is
 * `size / time per iteration` (bytes per µs = MB/s), and each holds a `baseline` plain
 * memory copy (`Uint8Array.prototype.set`) of the same size. The public-key groups report
 * operations per second directly (iter/s).
 *
 * Run: `deno bench --allow-read=. bench/crypto_bench.ts`
 */

import { BACKENDS } from "../src/channel/backends.ts";
import type { CipherName } from "../src/channel/crypto_backend.ts";

const SIZES = [64, 1024, 16 * 1024, 64 * 1024] as const;
const CIPHERS: readonly CipherName[] = ["ChaChaPoly", "AESGCM"];
const AD = new Uint8Array(32).fill(0xad);
const KEY = crypto.getRandomValues(new Uint8Array(32));

for (const cipherName of CIPHERS) {
  for (const size of SIZES) {
    const group = `${cipherName} encrypt ${size} B`;
    const plaintext = crypto.getRandomValues(new Uint8Array(size));
    const copyTarget = new Uint8Array(size);

    Deno.bench({
      name: `memory copy ${size} B`,
      group,
      baseline: true,
      fn() {
        copyTarget.set(plaintext);
      },
    });

    for (const backend of BACKENDS) {
      const aead = backend.cipher(cipherName);
      let n = 0n;
      Deno.bench({
        name: `${backend.name} ${cipherName} encrypt ${size} B`,
        group,
        fn() {
          aead.encrypt(KEY, n++, AD, plaintext);
        },
      });
    }
  }
}

for (const backend of BACKENDS) {
  const { dh } = backend;
  const ours = dh.generateKeyPair();
  const theirs = dh.generateKeyPair().publicKey;
  Deno.bench({
    name: `${backend.name} X25519 dh`,
    group: "X25519 dh",
    baseline: backend === BACKENDS[0],
    fn() {
      dh.dh(ours, theirs);
    },
  });
  Deno.bench({
    name: `${backend.name} X25519 generateKeyPair`,
    group: "X25519 generateKeyPair",
    baseline: backend === BACKENDS[0],
    fn() {
      dh.generateKeyPair();
    },
  });
}

const MESSAGE = crypto.getRandomValues(new Uint8Array(100));

for (const backend of BACKENDS) {
  const { signer } = backend;
  const secretKey = signer.generateSecretKey();
  const publicKey = signer.publicKeyOf(secretKey);
  const signature = signer.sign(secretKey, MESSAGE);
  Deno.bench({
    name: `${backend.name} Ed25519 sign 100 B`,
    group: "Ed25519 sign",
    baseline: backend === BACKENDS[0],
    fn() {
      signer.sign(secretKey, MESSAGE);
    },
  });
  Deno.bench({
    name: `${backend.name} Ed25519 verify 100 B`,
    group: "Ed25519 verify",
    baseline: backend === BACKENDS[0],
    fn() {
      if (!signer.verify(publicKey, MESSAGE, signature)) throw new Error("verify failed");
    },
  });
}

// The public-key work of one complete XX handshake, both sides in one process: two ephemeral
// key pairs, six DH (ee, es, se on each side) and one identity signature verified per side.
for (const backend of BACKENDS) {
  const { dh, signer } = backend;
  const initiatorStatic = dh.generateKeyPair();
  const responderStatic = dh.generateKeyPair();
  const secretKey = signer.generateSecretKey();
  const publicKey = signer.publicKeyOf(secretKey);
  const signature = signer.sign(secretKey, initiatorStatic.publicKey);
  Deno.bench({
    name: `${backend.name} XX handshake public-key work`,
    group: "XX handshake public-key work (2 keygens, 6 dh, 2 verifies)",
    baseline: backend === BACKENDS[0],
    fn() {
      const e = dh.generateKeyPair();
      const re = dh.generateKeyPair();
      dh.dh(e, re.publicKey);
      dh.dh(re, e.publicKey);
      dh.dh(e, responderStatic.publicKey);
      dh.dh(responderStatic, e.publicKey);
      dh.dh(initiatorStatic, re.publicKey);
      dh.dh(re, initiatorStatic.publicKey);
      signer.verify(publicKey, initiatorStatic.publicKey, signature);
      signer.verify(publicKey, initiatorStatic.publicKey, signature);
    },
  });
}
