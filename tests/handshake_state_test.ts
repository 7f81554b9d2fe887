import assert from "node:assert/strict";
import { BACKENDS, nativeBackend, portableBackend } from "../src/channel/backends.ts";
import type { CryptoBackend } from "../src/channel/crypto_backend.ts";
import { HandshakeError, HandshakeState, MAX_MESSAGE_LEN } from "../src/channel/handshake_state.ts";
import { PATTERN_NAMES } from "../src/channel/handshake_pattern.ts";
import { CipherState, MAX_NONCE, NonceExhaustedError } from "../src/channel/cipher_state.ts";

const EMPTY = new Uint8Array(0);
const XX = "Noise_XX_25519_ChaChaPoly_SHA256";

function pair(
  protocol: string,
  initiatorBackend: CryptoBackend,
  responderBackend: CryptoBackend = initiatorBackend,
  extra: { prologueI?: Uint8Array; prologueR?: Uint8Array } = {},
) {
  const iS = initiatorBackend.dh.generateKeyPair();
  const rS = responderBackend.dh.generateKeyPair();
  const psks = [
    crypto.getRandomValues(new Uint8Array(32)),
    crypto.getRandomValues(new Uint8Array(32)),
  ];
  const initiator = new HandshakeState(protocol, true, {
    backend: initiatorBackend,
    s: iS,
    rs: rS.publicKey,
    psks,
    prologue: extra.prologueI,
  });
  const responder = new HandshakeState(protocol, false, {
    backend: responderBackend,
    s: rS,
    rs: iS.publicKey,
    psks,
    prologue: extra.prologueR,
  });
  return { initiator, responder, iS, rS };
}

/** Runs a handshake; `tamper` may change message i in flight. */
function run(
  initiator: HandshakeState,
  responder: HandshakeState,
  tamper?: (i: number, m: Uint8Array) => Uint8Array,
): void {
  for (let i = 0; !initiator.isComplete || !responder.isComplete; i++) {
    const [sender, receiver] = initiator.isMyTurn ? [initiator, responder] : [responder, initiator];
    const payload = new TextEncoder().encode(`payload ${i}`);
    const message = sender.writeMessage(payload);
    const got = receiver.readMessage(tamper ? tamper(i, message) : message);
    // A tampered cleartext payload reads back changed; the next message's tag then fails.
    if (!tamper) assert.deepEqual(got, payload);
  }
}

function roundTrip(initiator: HandshakeState, responder: HandshakeState): void {
  const a = initiator.split();
  const b = responder.split();
  const message = crypto.getRandomValues(new Uint8Array(100));
  assert.deepEqual(b.receive.decryptWithAd(EMPTY, a.send.encryptWithAd(EMPTY, message)), message);
  if (!initiator.protocol.pattern.oneWay) {
    assert.deepEqual(a.receive.decryptWithAd(EMPTY, b.send.encryptWithAd(EMPTY, message)), message);
  }
}

Deno.test("every implemented pattern completes a handshake and agrees on keys", async (t) => {
  const names = [...PATTERN_NAMES, "NNpsk0", "XXpsk3", "IKpsk2", "NKpsk0+psk2"];
  for (const name of names) {
    await t.step(name, () => {
      const { initiator, responder } = pair(`Noise_${name}_25519_AESGCM_BLAKE2b`, nativeBackend);
      run(initiator, responder);
      assert.deepEqual(initiator.handshakeHash(), responder.handshakeHash());
      roundTrip(initiator, responder);
    });
  }
});

Deno.test("a handshake between the native and the portable backend works both ways", () => {
  for (const [a, b] of [[nativeBackend, portableBackend], [portableBackend, nativeBackend]]) {
    const { initiator, responder, iS, rS } = pair(XX, a!, b!);
    run(initiator, responder);
    assert.deepEqual(responder.remoteStaticKey, iS.publicKey);
    assert.deepEqual(initiator.remoteStaticKey, rS.publicKey);
    roundTrip(initiator, responder);
  }
});

Deno.test("flipping any single byte of any XX handshake message fails the handshake", () => {
  for (const backend of BACKENDS) {
    const sizes = (() => {
      const { initiator, responder } = pair(XX, backend);
      const lengths: number[] = [];
      run(initiator, responder, (_, m) => (lengths.push(m.length), m));
      return lengths;
    })();
    for (const [message, length] of sizes.entries()) {
      for (let byte = 0; byte < length; byte++) {
        const { initiator, responder } = pair(XX, backend);
        const error = (() => {
          try {
            run(initiator, responder, (i, m) => {
              if (i === message) m[byte]! ^= 0x01;
              return m;
            });
          } catch (e) {
            return e;
          }
        })();
        // Message 0 is cleartext (e and an empty payload): a flipped e is only caught at
        // message 1, when the DH results disagree.
        assert.ok(
          error instanceof HandshakeError,
          `${backend.name} message ${message} byte ${byte}`,
        );
        assert.ok(error.stage >= message);
      }
    }
  }
});

Deno.test("a failed HandshakeState refuses every later call", () => {
  const { initiator, responder } = pair(XX, nativeBackend);
  const m0 = initiator.writeMessage(EMPTY);
  responder.readMessage(m0);
  const m1 = responder.writeMessage(EMPTY);
  m1[m1.length - 1]! ^= 1;
  assert.throws(() => initiator.readMessage(m1), HandshakeError);
  assert.throws(() => initiator.writeMessage(EMPTY), TypeError);
  assert.throws(() => initiator.split(), TypeError);
});

Deno.test("truncated and oversized handshake messages are refused", async (t) => {
  await t.step("truncated", () => {
    const { initiator, responder } = pair(XX, nativeBackend);
    responder.readMessage(initiator.writeMessage(EMPTY));
    const m1 = responder.writeMessage(EMPTY);
    for (const cut of [0, 1, 31, 32, 64, m1.length - 1]) {
      const fresh = pair(XX, nativeBackend);
      fresh.responder.readMessage(fresh.initiator.writeMessage(EMPTY));
      const full = fresh.responder.writeMessage(EMPTY);
      assert.throws(() => fresh.initiator.readMessage(full.subarray(0, cut)), HandshakeError);
    }
  });
  await t.step("a message of 31 bytes where e needs 32", () => {
    const { responder } = pair(XX, nativeBackend);
    assert.throws(() => responder.readMessage(new Uint8Array(31)), HandshakeError);
  });
  await t.step("oversized on read", () => {
    const { responder } = pair(XX, nativeBackend);
    assert.throws(() => responder.readMessage(new Uint8Array(MAX_MESSAGE_LEN + 1)), HandshakeError);
  });
  await t.step(
    "a payload that would exceed 65535 bytes is a RangeError and changes nothing",
    () => {
      const { initiator, responder } = pair(XX, nativeBackend);
      assert.throws(() => initiator.writeMessage(new Uint8Array(MAX_MESSAGE_LEN - 31)), RangeError);
      responder.readMessage(initiator.writeMessage(new Uint8Array(MAX_MESSAGE_LEN - 32)));
    },
  );
});

Deno.test("a different prologue fails the handshake", () => {
  const enc = new TextEncoder();
  const { initiator, responder } = pair(XX, nativeBackend, nativeBackend, {
    prologueI: enc.encode("stratos-channel-v1"),
    prologueR: enc.encode("stratos-channel-v2"),
  });
  assert.throws(() => run(initiator, responder), HandshakeError);
});

Deno.test("a low-order X25519 public key is refused", async (t) => {
  const lowOrder = [
    new Uint8Array(32),
    Uint8Array.of(1, ...new Uint8Array(31)),
    Uint8Array.from(
      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800".match(/../g)!,
      (h) => parseInt(h, 16),
    ),
  ];
  for (const backend of BACKENDS) {
    for (const key of lowOrder) {
      await t.step(`${backend.name}: ephemeral ${key[0]}...`, () => {
        const { responder } = pair(XX, backend);
        responder.readMessage(key);
        assert.throws(() => responder.writeMessage(EMPTY), HandshakeError);
      });
      await t.step(`${backend.name}: pre-shared static ${key[0]}...`, () => {
        const initiator = new HandshakeState("Noise_NK_25519_ChaChaPoly_SHA256", true, {
          backend,
          rs: key,
        });
        assert.throws(() => initiator.writeMessage(EMPTY), HandshakeError);
      });
    }
  }
});

Deno.test("messages out of turn are refused with a TypeError", () => {
  const { initiator, responder } = pair(XX, nativeBackend);
  assert.throws(() => responder.writeMessage(EMPTY), TypeError);
  assert.throws(() => initiator.readMessage(new Uint8Array(48)), TypeError);
});

Deno.test("missing keys and unknown protocols are caller errors", () => {
  const backend = nativeBackend;
  assert.throws(() => new HandshakeState(XX, true, { backend }), TypeError);
  assert.throws(
    () =>
      new HandshakeState("Noise_IK_25519_ChaChaPoly_SHA256", true, {
        backend,
        s: backend.dh.generateKeyPair(),
      }),
    TypeError,
  );
  assert.throws(
    () => new HandshakeState("Noise_ZZ_25519_ChaChaPoly_SHA256", true, { backend }),
    RangeError,
  );
  assert.throws(
    () => new HandshakeState("Noise_XX_448_ChaChaPoly_SHA256", true, { backend }),
    RangeError,
  );
  assert.throws(() => new HandshakeState("XX_25519", true, { backend }), SyntaxError);
});

Deno.test("a CipherState refuses to use the reserved nonce 2^64-1", () => {
  const cs = new CipherState(nativeBackend.cipher("ChaChaPoly"));
  cs.initializeKey(new Uint8Array(32));
  cs.setNonce(MAX_NONCE - 1n);
  cs.encryptWithAd(EMPTY, EMPTY);
  assert.throws(() => cs.encryptWithAd(EMPTY, EMPTY), NonceExhaustedError);
  assert.throws(() => cs.decryptWithAd(EMPTY, new Uint8Array(16)), NonceExhaustedError);
});

Deno.test("rekey changes the key the same way on both backends", () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const [a, b] = BACKENDS.map((backend) => {
    const cs = new CipherState(backend.cipher("ChaChaPoly"));
    cs.initializeKey(key);
    cs.rekey();
    return cs.encryptWithAd(EMPTY, Uint8Array.of(1, 2, 3));
  });
  const plain = new CipherState(nativeBackend.cipher("ChaChaPoly"));
  plain.initializeKey(key);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, plain.encryptWithAd(EMPTY, Uint8Array.of(1, 2, 3)));
});
