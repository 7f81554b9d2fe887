import assert from "node:assert/strict";
import { defaultBackend, portableBackend } from "../src/channel/backends.ts";
import type { CryptoBackend } from "../src/channel/crypto_backend.ts";
import {
  IDENTIFIER_PATTERN,
  identifierOf,
  Identity,
  isIdentifier,
  verifyIdentitySignature,
} from "../src/channel/identity.ts";

const encoder = new TextEncoder();

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // WebCrypto, independent of the backend under test.
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return new Uint8Array(digest).toHex();
}

const BACKENDS_UNDER_TEST: readonly [string, () => CryptoBackend][] = [
  ["the default backend", defaultBackend],
  ["the portable backend", () => portableBackend],
];

for (const [label, backendOf] of BACKENDS_UNDER_TEST) {
  Deno.test(`An identity's identifier is "I" and the SHA-256 of its public key, with ${label}`, async (t) => {
    const backend = backendOf();

    await t.step("identifier is I and 64 lower-case hex digits", () => {
      const identity = Identity.generate({ backend });
      assert.match(identity.identifier, IDENTIFIER_PATTERN);
      assert.equal(identity.identifier.length, 65);
      assert.ok(isIdentifier(identity.identifier));
    });

    await t.step("identifier equals SHA-256 of all 32 public key bytes", async () => {
      const identity = Identity.generate({ backend });
      assert.equal(identity.publicKey.length, 32);
      assert.equal(identity.identifier, "I" + await sha256Hex(identity.publicKey));
      assert.equal(identifierOf(identity.publicKey, { backend }), identity.identifier);
    });

    await t.step("two generated identities differ", () => {
      const a = Identity.generate({ backend });
      const b = Identity.generate({ backend });
      assert.notEqual(a.identifier, b.identifier);
    });

    await t.step("identifierOf refuses a public key of the wrong length", () => {
      assert.throws(() => identifierOf(new Uint8Array(31), { backend }), RangeError);
      assert.throws(() => identifierOf(new Uint8Array(33), { backend }), RangeError);
    });
  });

  Deno.test(`An identity signs and a flipped byte fails verification, with ${label}`, async (t) => {
    const backend = backendOf();
    const identity = Identity.generate({ backend });
    const message = encoder.encode("noise handshake hash");
    const signature = identity.sign(message);

    await t.step("signature is 64 bytes and verifies", () => {
      assert.equal(signature.length, 64);
      assert.ok(verifyIdentitySignature(identity.publicKey, message, signature, { backend }));
    });

    await t.step("every flipped signature byte fails", () => {
      for (let i = 0; i < signature.length; i++) {
        const bad = signature.slice();
        bad[i] = bad[i]! ^ 0x01;
        assert.equal(verifyIdentitySignature(identity.publicKey, message, bad, { backend }), false);
      }
    });

    await t.step("a flipped message byte fails", () => {
      const bad = message.slice();
      bad[0] = bad[0]! ^ 0x80;
      assert.equal(verifyIdentitySignature(identity.publicKey, bad, signature, { backend }), false);
    });

    await t.step("another identity's public key fails", () => {
      const other = Identity.generate({ backend });
      assert.equal(
        verifyIdentitySignature(other.publicKey, message, signature, { backend }),
        false,
      );
    });

    await t.step("wrong-length key or signature gives false, not an exception", () => {
      assert.equal(
        verifyIdentitySignature(identity.publicKey, message, signature.subarray(1), { backend }),
        false,
      );
      assert.equal(
        verifyIdentitySignature(identity.publicKey.subarray(1), message, signature, { backend }),
        false,
      );
    });
  });

  Deno.test(`An identity round-trips through its secret key, with ${label}`, async (t) => {
    const backend = backendOf();

    await t.step("fromSecretKey gives the same identifier and signatures", () => {
      const identity = Identity.generate({ backend });
      const again = Identity.fromSecretKey(identity.exportSecretKey(), { backend });
      assert.equal(again.identifier, identity.identifier);
      assert.deepEqual(again.publicKey, identity.publicKey);
      const message = encoder.encode("m");
      assert.ok(verifyIdentitySignature(identity.publicKey, message, again.sign(message)));
    });

    await t.step("exportSecretKey returns a copy", () => {
      const identity = Identity.generate({ backend });
      const copy = identity.exportSecretKey();
      copy.fill(0);
      assert.notDeepEqual(identity.exportSecretKey(), copy);
    });

    await t.step("fromSecretKey copies its input", () => {
      const seed = Identity.generate({ backend }).exportSecretKey();
      const identity = Identity.fromSecretKey(seed, { backend });
      const before = identity.identifier;
      seed.fill(0);
      const message = encoder.encode("m");
      assert.ok(verifyIdentitySignature(identity.publicKey, message, identity.sign(message)));
      assert.equal(identity.identifier, before);
    });

    await t.step("fromSecretKey refuses a wrong-length key with RangeError", () => {
      assert.throws(() => Identity.fromSecretKey(new Uint8Array(31), { backend }), RangeError);
      assert.throws(() => Identity.fromSecretKey(new Uint8Array(64), { backend }), RangeError);
    });

    await t.step("inspecting or serialising an identity does not show the secret key", () => {
      const identity = Identity.generate({ backend });
      const secretHex = identity.exportSecretKey().toHex();
      const secretBase64 = identity.exportSecretKey().toBase64();
      for (const text of [Deno.inspect(identity), JSON.stringify(identity)]) {
        assert.ok(text.includes(identity.identifier));
        assert.ok(!text.includes(secretHex));
        assert.ok(!text.includes(secretBase64));
      }
    });
  });
}

Deno.test("isIdentifier accepts only I and 64 lower-case hex digits", async (t) => {
  const good = "I" + "0123456789abcdef".repeat(4);
  await t.step("a well-formed identifier", () => assert.ok(isIdentifier(good)));
  const bad: readonly [string, unknown][] = [
    ["upper-case hex", good.toUpperCase()],
    ["a lower-case prefix", "i" + good.slice(1)],
    ["63 digits", good.slice(0, -1)],
    ["65 digits", good + "0"],
    ["a trailing newline", good + "\n"],
    ["a non-hex digit", good.slice(0, -1) + "g"],
    ["the empty string", ""],
    ["a number", 42],
    ["undefined", undefined],
  ];
  for (const [label, value] of bad) {
    await t.step(`refuses ${label}`, () => assert.equal(isIdentifier(value), false));
  }
});
