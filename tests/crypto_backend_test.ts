/**
 * One conformance suite for every CryptoBackend in BACKENDS: known answers from the RFCs,
 * negative cases (tampering, wrong sizes, low-order points, malformed signatures) and
 * agreement between the backends on random inputs.
 */

import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { gcm } from "@noble/ciphers/aes.js";
import {
  AuthenticationError,
  type CipherName,
  type CryptoBackend,
  type HashName,
  type KeyPair,
} from "../src/channel/crypto_backend.ts";
import {
  backendByName,
  BACKENDS,
  defaultBackend,
  nativeBackend,
  passesSelfTest,
  portableBackend,
} from "../src/channel/backends.ts";

function fromHex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const random = (length: number): Uint8Array => crypto.getRandomValues(new Uint8Array(length));
const EMPTY = new Uint8Array(0);

/** A KeyPair with only the private half meaningful: what `dh` reads. */
function privateOnly(privateKey: Uint8Array): KeyPair {
  return { privateKey, publicKey: new Uint8Array(32) };
}

// RFC 7748 §5.2: scalar, input u-coordinate, output u-coordinate.
const X25519_VECTORS = [
  {
    scalar: "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
    u: "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
    out: "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
  },
  {
    // Its u has the top bit set: RFC 7748 §5 says implementations must mask it.
    scalar: "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
    u: "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
    out: "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
  },
];

// RFC 7748 §6.1.
const ALICE_PRIVATE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PUBLIC = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const BOB_PRIVATE = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const BOB_PUBLIC = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const ALICE_BOB_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

// Public keys of small order, and non-canonical encodings of them (RFC 7748 §6.1, and the
// blocklist libsodium keeps): each makes X25519 output all zeros.
const LOW_ORDER_POINTS: Record<string, string> = {
  "all zeros (u = 0)": "0000000000000000000000000000000000000000000000000000000000000000",
  "u = 1": "0100000000000000000000000000000000000000000000000000000000000000",
  "an order-8 point": "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "the other order-8 point": "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "u = p - 1": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "u = p (non-canonical 0)": "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "u = p + 1 (non-canonical 1)": "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
};

// RFC 8439 §2.8.2.
const RFC8439_KEY = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
const RFC8439_AD = "50515253c0c1c2c3c4c5c6c7";
const RFC8439_PLAINTEXT = utf8(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the " +
    "future, sunscreen would be it.",
);
const RFC8439_NONCE = "070000004041424344454647";
const RFC8439_CIPHERTEXT_AND_TAG = `
  d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92
  728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b
  4831d7bc3ff4def08e4b7a9de576d26586cec64b6116 1ae10b594f09e26a7e902ecbd0600691`;
/**
 * The same inputs under the Noise nonce for n = 0x4746454443424140 (00000000 4041424344454647,
 * which differs from the RFC's nonce in its first byte only). Computed with @noble/ciphers;
 * the native backend reproducing it is the independent check.
 */
const NOISE_CHACHA_N = 0x4746454443424140n;
const NOISE_CHACHA_CIPHERTEXT_AND_TAG = `
  a479cb54628946d6f4042a8e384ef4bd2fbc7330b8be55eb2d8dc18aaa51d66a8ec1f8d3619a258db0ac56956015
  b7b4937e9b8e6aa957b3dc0214d803d77660aabc913092971da8f207171ce7843608162e2e759d8efc25d8d09369
  90af63c820ba87e8a955b5c8274ef7d10f6fafd046472dbf189b668bd430aef9147e99cb6c89`;

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13, 14 and 16.
const GCM_TC13_TAG = "530f8afbc74536b9a963b4f1c4cb738b";
const GCM_TC14_CIPHERTEXT_AND_TAG =
  "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919";
const GCM_TC16_KEY = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
const GCM_TC16_IV = "cafebabefacedbaddecaf888";
const GCM_TC16_AD = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM_TC16_PLAINTEXT = `
  d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6
  b525b16aedf5aa0de657ba637b39`;
const GCM_TC16_CIPHERTEXT_AND_TAG = `
  522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b105682
  8838c5f61e6393ba7a0abcc9f662 76fc6ece0f4e1768cddf8853bb2d551b`;
/** Test case 16's inputs under the Noise nonce for n = 0xcafebabefacedbad, from @noble/ciphers. */
const NOISE_GCM_N = 0xcafebabefacedbadn;
const NOISE_GCM_CIPHERTEXT_AND_TAG = `
  3f497c101d99b6774cdb002724096e93bab0310b1bb9d85587540548af0775b8b0f97e293f512f4c1db52d9273b4
  f1ed897c676322e2d1b4562c79da94c6844e50d8c7451c71b3a953f1b04e`;

// FIPS 180-2 and RFC 7693 appendix A / BLAKE2 reference: the hash of "abc".
const HASH_OF_ABC: Record<HashName, string> = {
  SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  SHA512: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" +
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
  BLAKE2s: "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
  BLAKE2b: "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1" +
    "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
};
const HASH_LENGTHS: Record<HashName, [hashLen: number, blockLen: number]> = {
  SHA256: [32, 64],
  SHA512: [64, 128],
  BLAKE2s: [32, 64],
  BLAKE2b: [64, 128],
};

// RFC 4231 §4.3 (test case 2) and §4.7 (test case 6: a key longer than the block).
const HMAC_CASE2_KEY = utf8("Jefe");
const HMAC_CASE2_DATA = utf8("what do ya want for nothing?");
const HMAC_SHA256_CASE2 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
const HMAC_SHA512_CASE2 = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554" +
  "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737";
const HMAC_CASE6_KEY = new Uint8Array(131).fill(0xaa);
const HMAC_CASE6_DATA = utf8("Test Using Larger Than Block-Size Key - Hash Key First");
const HMAC_SHA256_CASE6 = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";

// RFC 8032 §7.1, tests 1 and 2.
const ED25519_VECTORS = [
  {
    name: "test 1 (empty message)",
    secretKey: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155" +
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "test 2 (one-byte message)",
    secretKey: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
];
/** The Ed25519 group order L, little-endian (RFC 8032 §5.1). */
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;
/** A 32-byte string that decodes to no Edwards point (its y has no matching x). */
const NOT_A_POINT = "0200000000000000000000000000000000000000000000000000000000000000";

const CIPHER_NAMES: readonly CipherName[] = ["ChaChaPoly", "AESGCM"];
const HASH_NAMES: readonly HashName[] = ["SHA256", "SHA512", "BLAKE2s", "BLAKE2b"];

function otherBackends(backend: CryptoBackend): CryptoBackend[] {
  return BACKENDS.filter((b) => b !== backend);
}

function assertThrowsAuthentication(fn: () => unknown): void {
  assert.throws(fn, AuthenticationError);
}

for (const backend of BACKENDS) {
  const { dh, signer } = backend;

  Deno.test(`${backend.name} backend: X25519 matches the RFC 7748 §5.2 vectors`, () => {
    for (const { scalar, u, out } of X25519_VECTORS) {
      assert.equal(hex(dh.dh(privateOnly(fromHex(scalar)), fromHex(u))), out);
    }
  });

  Deno.test(`${backend.name} backend: X25519 matches RFC 7748 §5.2 after 1 and 1,000 iterations`, () => {
    let k = fromHex("0900000000000000000000000000000000000000000000000000000000000000");
    let u = k;
    for (let i = 1; i <= 1000; i++) {
      [k, u] = [dh.dh(privateOnly(k), u), k];
      if (i === 1) {
        assert.equal(hex(k), "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
      }
    }
    assert.equal(hex(k), "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
  });

  Deno.test(`${backend.name} backend: X25519 reproduces the RFC 7748 §6.1 Alice and Bob example`, () => {
    const alice = dh.keyPairFromPrivate(fromHex(ALICE_PRIVATE));
    const bob = dh.keyPairFromPrivate(fromHex(BOB_PRIVATE));
    assert.equal(hex(alice.publicKey), ALICE_PUBLIC);
    assert.equal(hex(bob.publicKey), BOB_PUBLIC);
    assert.equal(hex(alice.privateKey), ALICE_PRIVATE);
    assert.equal(hex(dh.dh(alice, bob.publicKey)), ALICE_BOB_SHARED);
    assert.equal(hex(dh.dh(bob, alice.publicKey)), ALICE_BOB_SHARED);
    assert.equal(dh.name, "25519");
    assert.equal(dh.dhLen, 32);
  });

  Deno.test(`${backend.name} backend: generated X25519 key pairs are fresh and agree`, () => {
    const a = dh.generateKeyPair();
    const b = dh.generateKeyPair();
    assert.equal(a.publicKey.length, 32);
    assert.equal(a.privateKey.length, 32);
    assert.notEqual(hex(a.privateKey), hex(b.privateKey));
    assert.deepEqual(dh.keyPairFromPrivate(a.privateKey).publicKey, a.publicKey);
    assert.deepEqual(dh.dh(a, b.publicKey), dh.dh(b, a.publicKey));
  });

  Deno.test(`${backend.name} backend: X25519 refuses every low-order public key`, async (t) => {
    const keyPair = dh.generateKeyPair();
    for (const [name, point] of Object.entries(LOW_ORDER_POINTS)) {
      await t.step(name, () => {
        assert.throws(() => dh.dh(keyPair, fromHex(point)), (err: unknown) => {
          assert.ok(err instanceof Error);
          assert.ok(!(err instanceof RangeError), "a low-order key is not a size error");
          assert.match(err.message, /low-order/);
          return true;
        });
      });
    }
  });

  Deno.test(`${backend.name} backend: X25519 rejects wrong key lengths with RangeError`, () => {
    const keyPair = dh.generateKeyPair();
    assert.throws(() => dh.keyPairFromPrivate(new Uint8Array(31)), RangeError);
    assert.throws(() => dh.keyPairFromPrivate(new Uint8Array(33)), RangeError);
    assert.throws(() => dh.dh(keyPair, new Uint8Array(31)), RangeError);
    assert.throws(() => dh.dh(keyPair, new Uint8Array(33)), RangeError);
    assert.throws(() => dh.dh(privateOnly(new Uint8Array(16)), keyPair.publicKey), RangeError);
  });

  Deno.test(`${backend.name} backend: X25519 uses the key bytes as they are now, even if changed in place`, () => {
    const alice = dh.keyPairFromPrivate(fromHex(ALICE_PRIVATE));
    const bob = dh.keyPairFromPrivate(fromHex(BOB_PRIVATE));
    const other = dh.generateKeyPair();
    const peer = bob.publicKey.slice();
    assert.equal(hex(dh.dh(alice, peer)), ALICE_BOB_SHARED);
    // Overwrite Alice's private key and the peer key in place: no stale cached key may be used.
    alice.privateKey.set(other.privateKey);
    assert.deepEqual(dh.dh(alice, peer), dh.dh(other, bob.publicKey));
    peer.set(other.publicKey);
    assert.deepEqual(dh.dh(alice, peer), dh.dh(other, other.publicKey));
  });

  Deno.test(`${backend.name} backend: keyPairFromPrivate keeps its own copy of the private key`, () => {
    const privateKey = fromHex(ALICE_PRIVATE);
    const alice = dh.keyPairFromPrivate(privateKey);
    privateKey.fill(0);
    assert.equal(hex(alice.privateKey), ALICE_PRIVATE);
    assert.equal(hex(dh.dh(alice, fromHex(BOB_PUBLIC))), ALICE_BOB_SHARED);
  });

  Deno.test(`${backend.name} backend: ChaChaPoly reproduces RFC 8439 §2.8.2 under a Noise nonce`, () => {
    const aead = backend.cipher("ChaChaPoly");
    assert.equal(aead.name, "ChaChaPoly");
    const key = fromHex(RFC8439_KEY);
    const ad = fromHex(RFC8439_AD);
    const ciphertext = aead.encrypt(key, NOISE_CHACHA_N, ad, RFC8439_PLAINTEXT);
    assert.equal(hex(ciphertext), NOISE_CHACHA_CIPHERTEXT_AND_TAG.replace(/\s+/g, ""));
    assert.deepEqual(aead.decrypt(key, NOISE_CHACHA_N, ad, ciphertext), RFC8439_PLAINTEXT);
  });

  Deno.test(`${backend.name} backend: AEADs write the same ciphertext into a given buffer`, () => {
    for (const name of ["ChaChaPoly", "AESGCM"] as const) {
      const aead = backend.cipher(name);
      const key = fromHex(RFC8439_KEY);
      const ad = fromHex(RFC8439_AD);
      const frame = new Uint8Array(9 + RFC8439_PLAINTEXT.length + 16).fill(0xee);
      const out = frame.subarray(9);
      assert.equal(aead.encrypt(key, 7n, ad, RFC8439_PLAINTEXT, out), out);
      assert.deepEqual(out, aead.encrypt(key, 7n, ad, RFC8439_PLAINTEXT));
      assert.deepEqual(frame.subarray(0, 9), new Uint8Array(9).fill(0xee), `${name} wrote before`);
      assert.deepEqual(aead.decrypt(key, 7n, ad, out), RFC8439_PLAINTEXT);
      assert.throws(
        () => aead.encrypt(key, 7n, ad, RFC8439_PLAINTEXT, frame),
        RangeError,
        `${name} refuses an output of the wrong size`,
      );
    }
  });

  Deno.test(`${backend.name} backend: AESGCM reproduces McGrew-Viega test cases 13 and 14 at n = 0`, () => {
    const aead = backend.cipher("AESGCM");
    assert.equal(aead.name, "AESGCM");
    const key = new Uint8Array(32);
    assert.equal(hex(aead.encrypt(key, 0n, EMPTY, EMPTY)), GCM_TC13_TAG);
    assert.equal(
      hex(aead.encrypt(key, 0n, EMPTY, new Uint8Array(16))),
      GCM_TC14_CIPHERTEXT_AND_TAG,
    );
    assert.deepEqual(aead.decrypt(key, 0n, EMPTY, fromHex(GCM_TC13_TAG)), EMPTY);
  });

  Deno.test(`${backend.name} backend: AESGCM reproduces test case 16's inputs under a Noise nonce`, () => {
    const aead = backend.cipher("AESGCM");
    const key = fromHex(GCM_TC16_KEY);
    const ad = fromHex(GCM_TC16_AD);
    const plaintext = fromHex(GCM_TC16_PLAINTEXT);
    const ciphertext = aead.encrypt(key, NOISE_GCM_N, ad, plaintext);
    assert.equal(hex(ciphertext), NOISE_GCM_CIPHERTEXT_AND_TAG.replace(/\s+/g, ""));
    assert.deepEqual(aead.decrypt(key, NOISE_GCM_N, ad, ciphertext), plaintext);
  });

  Deno.test(`${backend.name} backend: the nonce encodes n little-endian for ChaChaPoly and big-endian for AESGCM`, () => {
    const key = fromHex(RFC8439_KEY);
    const plaintext = utf8("nonce layout");
    const n = 0x0102030405060708n;
    const le = fromHex("000000000807060504030201");
    const be = fromHex("000000000102030405060708");
    assert.deepEqual(
      backend.cipher("ChaChaPoly").encrypt(key, n, EMPTY, plaintext),
      chacha20poly1305(key, le, EMPTY).encrypt(plaintext),
    );
    assert.deepEqual(
      backend.cipher("AESGCM").encrypt(key, n, EMPTY, plaintext),
      gcm(key, be, EMPTY).encrypt(plaintext),
    );
  });

  for (const cipherName of CIPHER_NAMES) {
    Deno.test(`${backend.name} backend: ${cipherName} round-trips lengths 0 to 70, around 4 KiB and up to 64 KiB`, () => {
      const aead = backend.cipher(cipherName);
      const key = random(32);
      const ad = random(32);
      const lengths = [
        ...Array.from({ length: 71 }, (_, i) => i),
        1024,
        4095,
        4096,
        4097,
        65535,
        65536,
      ];
      for (const length of lengths) {
        const plaintext = random(length);
        const n = BigInt(length) * 0x1_0000_0001n;
        const ciphertext = aead.encrypt(key, n, ad, plaintext);
        assert.equal(ciphertext.length, length + 16);
        assert.deepEqual(aead.decrypt(key, n, ad, ciphertext), plaintext);
      }
    });

    Deno.test(`${backend.name} backend: ${cipherName} accepts n = 0 and n = 2^64-1 and rejects values outside`, () => {
      const aead = backend.cipher(cipherName);
      const key = random(32);
      const max = 2n ** 64n - 1n;
      assert.deepEqual(aead.decrypt(key, max, EMPTY, aead.encrypt(key, max, EMPTY, EMPTY)), EMPTY);
      assert.notDeepEqual(
        aead.encrypt(key, 0n, EMPTY, EMPTY),
        aead.encrypt(key, max, EMPTY, EMPTY),
      );
      assert.throws(() => aead.encrypt(key, -1n, EMPTY, EMPTY), RangeError);
      assert.throws(() => aead.encrypt(key, max + 1n, EMPTY, EMPTY), RangeError);
      assert.throws(() => aead.decrypt(key, max + 1n, EMPTY, new Uint8Array(16)), RangeError);
    });

    Deno.test(`${backend.name} backend: ${cipherName} rejects a flipped bit anywhere with AuthenticationError`, async (t) => {
      const aead = backend.cipher(cipherName);
      const key = random(32);
      const ad = utf8("associated data");
      const plaintext = utf8("attack at dawn, bring snacks");
      const ciphertext = aead.encrypt(key, 7n, ad, plaintext);
      await t.step("in the ciphertext or the tag", () => {
        for (let i = 0; i < ciphertext.length; i++) {
          const tampered = ciphertext.slice();
          tampered[i]! ^= 0x01;
          assertThrowsAuthentication(() => aead.decrypt(key, 7n, ad, tampered));
        }
      });
      await t.step("in the associated data", () => {
        for (let i = 0; i < ad.length; i++) {
          const tampered = ad.slice();
          tampered[i]! ^= 0x80;
          assertThrowsAuthentication(() => aead.decrypt(key, 7n, tampered, ciphertext));
        }
        assertThrowsAuthentication(() => aead.decrypt(key, 7n, EMPTY, ciphertext));
      });
      await t.step("in the key or the nonce", () => {
        const wrongKey = key.slice();
        wrongKey[31]! ^= 0x01;
        assertThrowsAuthentication(() => aead.decrypt(wrongKey, 7n, ad, ciphertext));
        assertThrowsAuthentication(() => aead.decrypt(key, 8n, ad, ciphertext));
      });
      await t.step("a truncated or extended ciphertext", () => {
        assertThrowsAuthentication(() => aead.decrypt(key, 7n, ad, ciphertext.subarray(1)));
        assertThrowsAuthentication(() => aead.decrypt(key, 7n, ad, ciphertext.subarray(0, 15)));
        assertThrowsAuthentication(() => aead.decrypt(key, 7n, ad, EMPTY));
        const longer = new Uint8Array(ciphertext.length + 1);
        longer.set(ciphertext);
        assertThrowsAuthentication(() => aead.decrypt(key, 7n, ad, longer));
      });
      assert.deepEqual(aead.decrypt(key, 7n, ad, ciphertext), plaintext);
    });

    Deno.test(`${backend.name} backend: ${cipherName} rejects a key that is not 32 bytes with RangeError`, () => {
      const aead = backend.cipher(cipherName);
      for (const length of [0, 16, 31, 33, 64]) {
        assert.throws(() => aead.encrypt(new Uint8Array(length), 0n, EMPTY, EMPTY), RangeError);
        assert.throws(
          () => aead.decrypt(new Uint8Array(length), 0n, EMPTY, new Uint8Array(16)),
          RangeError,
        );
      }
    });

    Deno.test(`${backend.name} backend: ${cipherName} leaves its inputs unchanged`, () => {
      const aead = backend.cipher(cipherName);
      const key = random(32);
      const ad = random(20);
      const plaintext = random(100);
      const copies = [key.slice(), ad.slice(), plaintext.slice()];
      const ciphertext = aead.encrypt(key, 3n, ad, plaintext);
      const ciphertextCopy = ciphertext.slice();
      aead.decrypt(key, 3n, ad, ciphertext);
      assert.deepEqual([key, ad, plaintext], copies);
      assert.deepEqual(ciphertext, ciphertextCopy);
    });
  }

  Deno.test(`${backend.name} backend: cipher and hash reject unknown names with RangeError`, () => {
    assert.throws(() => backend.cipher("AESGCM256" as CipherName), RangeError);
    assert.throws(() => backend.hash("SHA3" as HashName), RangeError);
  });

  Deno.test(`${backend.name} backend: every hash of "abc" matches its known answer`, () => {
    for (const name of HASH_NAMES) {
      const hash = backend.hash(name);
      const [hashLen, blockLen] = HASH_LENGTHS[name];
      assert.equal(hash.name, name);
      assert.equal(hash.hashLen, hashLen);
      assert.equal(hash.blockLen, blockLen);
      assert.equal(hex(hash.hash(utf8("abc"))), HASH_OF_ABC[name], name);
      // Parts are concatenated: "a" || "" || "bc".
      assert.equal(hex(hash.hash(utf8("a"), EMPTY, utf8("bc"))), HASH_OF_ABC[name], name);
      assert.equal(hash.hash().length, hashLen);
    }
  });

  Deno.test(`${backend.name} backend: HMAC matches RFC 4231 test cases 2 and 6`, () => {
    const sha256 = backend.hash("SHA256");
    const sha512 = backend.hash("SHA512");
    assert.equal(hex(sha256.hmac(HMAC_CASE2_KEY, HMAC_CASE2_DATA)), HMAC_SHA256_CASE2);
    assert.equal(hex(sha512.hmac(HMAC_CASE2_KEY, HMAC_CASE2_DATA)), HMAC_SHA512_CASE2);
    assert.equal(
      hex(sha256.hmac(HMAC_CASE2_KEY, HMAC_CASE2_DATA.subarray(0, 9), HMAC_CASE2_DATA.subarray(9))),
      HMAC_SHA256_CASE2,
    );
    assert.equal(hex(sha256.hmac(HMAC_CASE6_KEY, HMAC_CASE6_DATA)), HMAC_SHA256_CASE6);
  });

  Deno.test(`${backend.name} backend: Ed25519 matches RFC 8032 §7.1 tests 1 and 2`, async (t) => {
    for (const v of ED25519_VECTORS) {
      await t.step(v.name, () => {
        const secretKey = fromHex(v.secretKey);
        const message = fromHex(v.message);
        assert.equal(hex(signer.publicKeyOf(secretKey)), v.publicKey);
        assert.equal(hex(signer.sign(secretKey, message)), v.signature);
        assert.equal(signer.verify(fromHex(v.publicKey), message, fromHex(v.signature)), true);
      });
    }
  });

  Deno.test(`${backend.name} backend: Ed25519 signs and verifies with a fresh key`, () => {
    const secretKey = signer.generateSecretKey();
    assert.equal(secretKey.length, 32);
    assert.notDeepEqual(secretKey, signer.generateSecretKey());
    const publicKey = signer.publicKeyOf(secretKey);
    const message = random(200);
    const signature = signer.sign(secretKey, message);
    assert.equal(signature.length, 64);
    assert.equal(signer.verify(publicKey, message, signature), true);
    assert.equal(signer.verify(publicKey, random(200), signature), false);
  });

  Deno.test(`${backend.name} backend: Ed25519 verify returns false, never throws, on bad input`, async (t) => {
    const v = ED25519_VECTORS[1]!;
    const publicKey = fromHex(v.publicKey);
    const message = fromHex(v.message);
    const signature = fromHex(v.signature);
    const cases: Record<string, [Uint8Array, Uint8Array, Uint8Array]> = {
      "a different message": [publicKey, utf8("s"), signature],
      "a flipped signature bit in R": [publicKey, message, flip(signature, 3)],
      "a flipped signature bit in S": [publicKey, message, flip(signature, 40)],
      "a flipped public key bit": [flip(publicKey, 5), message, signature],
      "a short signature": [publicKey, message, signature.subarray(0, 63)],
      "a long signature": [publicKey, message, concat(signature, new Uint8Array(1))],
      "an empty signature": [publicKey, message, EMPTY],
      "a short public key": [publicKey.subarray(0, 31), message, signature],
      "a long public key": [concat(publicKey, new Uint8Array(1)), message, signature],
      "a public key that is not a curve point": [fromHex(NOT_A_POINT), message, signature],
      "an all-0xff signature": [publicKey, message, new Uint8Array(64).fill(0xff)],
      "an all-zero signature and key": [new Uint8Array(32), message, new Uint8Array(64)],
      "a non-canonical S (S + L)": [publicKey, message, withSPlusL(signature)],
    };
    for (const [name, [key, msg, sig]] of Object.entries(cases)) {
      await t.step(name, () => {
        assert.equal(signer.verify(key, msg, sig), false);
      });
    }
  });

  Deno.test(`${backend.name} backend: Ed25519 rejects a secret key that is not 32 bytes with RangeError`, () => {
    for (const length of [0, 31, 33, 64]) {
      assert.throws(() => signer.sign(new Uint8Array(length), EMPTY), RangeError);
      assert.throws(() => signer.publicKeyOf(new Uint8Array(length)), RangeError);
    }
  });

  Deno.test(`${backend.name} backend: Ed25519 uses the key bytes as they are now, even if changed in place`, () => {
    const [v1, v2] = [ED25519_VECTORS[0]!, ED25519_VECTORS[1]!];
    const secretKey = fromHex(v1.secretKey);
    const publicKey = fromHex(v1.publicKey);
    assert.equal(hex(signer.sign(secretKey, EMPTY)), v1.signature);
    assert.equal(signer.verify(publicKey, EMPTY, fromHex(v1.signature)), true);
    secretKey.set(fromHex(v2.secretKey));
    publicKey.set(fromHex(v2.publicKey));
    assert.equal(hex(signer.publicKeyOf(secretKey)), v2.publicKey);
    assert.equal(hex(signer.sign(secretKey, fromHex(v2.message))), v2.signature);
    assert.equal(signer.verify(publicKey, EMPTY, fromHex(v1.signature)), false);
    assert.equal(signer.verify(publicKey, fromHex(v2.message), fromHex(v2.signature)), true);
  });

  for (const other of otherBackends(backend)) {
    Deno.test(`${backend.name} backend agrees with ${other.name} on random AEAD inputs`, () => {
      for (const cipherName of CIPHER_NAMES) {
        const mine = backend.cipher(cipherName);
        const theirs = other.cipher(cipherName);
        for (const length of [0, 1, 15, 16, 17, 63, 64, 65, 1000, 4096, 65535]) {
          const key = random(32);
          const ad = random(length % 50);
          const plaintext = random(length);
          const n = new DataView(random(8).buffer).getBigUint64(0);
          const ciphertext = mine.encrypt(key, n, ad, plaintext);
          assert.deepEqual(ciphertext, theirs.encrypt(key, n, ad, plaintext), cipherName);
          assert.deepEqual(theirs.decrypt(key, n, ad, ciphertext), plaintext, cipherName);
        }
      }
    });

    Deno.test(`${backend.name} backend agrees with ${other.name} on random hash and HMAC inputs`, () => {
      for (const name of HASH_NAMES) {
        for (const length of [0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200, 1000]) {
          const parts = [random(length), random(length % 7), random(3)];
          const key = random(length % 150);
          assert.deepEqual(backend.hash(name).hash(...parts), other.hash(name).hash(...parts));
          assert.deepEqual(
            backend.hash(name).hmac(key, ...parts),
            other.hash(name).hmac(key, ...parts),
            `${name} HMAC, ${key.length}-byte key`,
          );
        }
      }
    });

    Deno.test(`${backend.name} backend agrees with ${other.name} on random X25519 keys`, () => {
      for (let i = 0; i < 8; i++) {
        const mine = backend.dh.generateKeyPair();
        const theirs = other.dh.generateKeyPair();
        assert.deepEqual(other.dh.keyPairFromPrivate(mine.privateKey).publicKey, mine.publicKey);
        assert.deepEqual(
          backend.dh.dh(mine, theirs.publicKey),
          other.dh.dh(theirs, mine.publicKey),
        );
        const u = random(32);
        assert.deepEqual(backend.dh.dh(mine, u), other.dh.dh(mine, u));
      }
    });

    Deno.test(`${backend.name} backend agrees with ${other.name} on random Ed25519 signatures`, () => {
      for (let i = 0; i < 8; i++) {
        const secretKey = backend.signer.generateSecretKey();
        const publicKey = backend.signer.publicKeyOf(secretKey);
        assert.deepEqual(other.signer.publicKeyOf(secretKey), publicKey);
        const message = random(i * 37);
        const signature = backend.signer.sign(secretKey, message);
        // Ed25519 signing is deterministic (RFC 8032 §5.1.6).
        assert.deepEqual(other.signer.sign(secretKey, message), signature);
        assert.equal(other.signer.verify(publicKey, message, signature), true);
        assert.equal(other.signer.verify(publicKey, message, flip(signature, i)), false);
      }
    });
  }
}

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = bytes.slice();
  copy[index]! ^= 0x01;
  return copy;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** The signature with S replaced by S + L: the same scalar, non-canonically encoded. */
function withSPlusL(signature: Uint8Array): Uint8Array {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
  s += ED25519_L;
  const out = signature.slice();
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}

Deno.test("the primitive under each backend reproduces RFC 8439 §2.8.2 with the RFC's own nonce", () => {
  const key = fromHex(RFC8439_KEY);
  const nonce = fromHex(RFC8439_NONCE);
  const ad = fromHex(RFC8439_AD);
  const expected = RFC8439_CIPHERTEXT_AND_TAG.replace(/\s+/g, "");
  assert.equal(hex(chacha20poly1305(key, nonce, ad).encrypt(RFC8439_PLAINTEXT)), expected);
  const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  cipher.setAAD(ad, { plaintextLength: RFC8439_PLAINTEXT.length });
  const body = cipher.update(RFC8439_PLAINTEXT);
  cipher.final();
  assert.equal(hex(body) + hex(cipher.getAuthTag()), expected);
});

Deno.test("the primitive under each backend reproduces GCM test case 16 with its own IV", () => {
  const key = fromHex(GCM_TC16_KEY);
  const iv = fromHex(GCM_TC16_IV);
  const ad = fromHex(GCM_TC16_AD);
  const plaintext = fromHex(GCM_TC16_PLAINTEXT);
  const expected = GCM_TC16_CIPHERTEXT_AND_TAG.replace(/\s+/g, "");
  assert.equal(hex(gcm(key, iv, ad).encrypt(plaintext)), expected);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
  cipher.setAAD(ad);
  const body = cipher.update(plaintext);
  cipher.final();
  assert.equal(hex(body) + hex(cipher.getAuthTag()), expected);
});

Deno.test("BACKENDS lists native first, then portable", () => {
  assert.deepEqual(BACKENDS.map((b) => b.name), ["native", "portable"]);
  assert.equal(BACKENDS[0], nativeBackend);
  assert.equal(BACKENDS[1], portableBackend);
  assert.ok(Object.isFrozen(BACKENDS));
});

Deno.test("defaultBackend picks native on this runtime and returns the same backend each time", () => {
  assert.equal(defaultBackend(), nativeBackend);
  assert.equal(defaultBackend(), defaultBackend());
});

Deno.test("passesSelfTest accepts every backend in BACKENDS", () => {
  for (const backend of BACKENDS) assert.equal(passesSelfTest(backend), true, backend.name);
});

Deno.test("passesSelfTest rejects a backend with any broken primitive, without throwing", async (t) => {
  const base = nativeBackend;
  const broken: Record<string, CryptoBackend> = {
    "a wrong X25519 result": {
      ...base,
      dh: { ...base.dh, dh: () => new Uint8Array(32).fill(1) },
    },
    "a missing hash": {
      ...base,
      hash(name) {
        if (name === "BLAKE2b") throw new Error("digest method not supported");
        return base.hash(name);
      },
    },
    "a wrong HMAC": {
      ...base,
      hash: (name) => ({
        ...base.hash(name),
        hmac: (key, ...parts) => base.hash(name).hash(key, ...parts),
      }),
    },
    "an AEAD that accepts a tampered ciphertext": {
      ...base,
      cipher(name) {
        const aead = base.cipher(name);
        return {
          ...aead,
          decrypt(k, n, ad, ciphertext) {
            try {
              return aead.decrypt(k, n, ad, ciphertext);
            } catch {
              return EMPTY;
            }
          },
        };
      },
    },
    "a missing AEAD": {
      ...base,
      cipher(name) {
        if (name === "ChaChaPoly") throw new Error("Unknown cipher");
        return base.cipher(name);
      },
    },
    "a verify that accepts anything": {
      ...base,
      signer: { ...base.signer, verify: () => true },
    },
    "a signer that throws": {
      ...base,
      signer: {
        ...base.signer,
        sign() {
          throw new Error("unsupported");
        },
      },
    },
  };
  for (const [name, backend] of Object.entries(broken)) {
    await t.step(name, () => {
      assert.equal(passesSelfTest(backend), false);
    });
  }
});

Deno.test("backendByName finds each backend and names the valid ones for an unknown name", () => {
  assert.equal(backendByName("native"), nativeBackend);
  assert.equal(backendByName("portable"), portableBackend);
  assert.throws(() => backendByName("openssl"), (err: unknown) => {
    assert.ok(err instanceof RangeError);
    assert.match(err.message, /"openssl"/);
    assert.match(err.message, /"native", "portable"/);
    return true;
  });
});
