import assert from "node:assert/strict";
import { join } from "node:path";
import { constantTimeEqual } from "../src/channel/constant_time.ts";
import { Identity } from "../src/channel/identity.ts";
import {
  encodeTicket,
  parseTicket,
  type Ticket,
  TICKET_BINARY_LEN,
  TICKET_PREFIX,
  TICKET_PRESENTATION_LEN,
  TICKET_TEXT_LEN,
  ticketPresentation,
} from "../src/channel/ticket.ts";
import { TRUST_FILE_NAME, TrustPolicy } from "../src/channel/trust_policy.ts";

const IS_POSIX = Deno.build.os !== "windows";
const HOUR = 60 * 60 * 1000;
const T0 = Date.UTC(2030, 0, 1);

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "stratos-trust-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A clock the test moves by hand. */
function manualClock(start = T0): { now: () => number; set: (t: number) => void } {
  let time = start;
  return { now: () => time, set: (t) => time = t };
}

function randomIdentifier(): string {
  return "I" + crypto.getRandomValues(new Uint8Array(32)).toHex();
}

function sampleTicket(): Ticket {
  return {
    responder: randomIdentifier(),
    id: crypto.getRandomValues(new Uint8Array(16)),
    secret: crypto.getRandomValues(new Uint8Array(32)),
    expiresAt: T0 + HOUR,
  };
}

/** The text form with one byte of the binary layout changed. */
function withBinaryByte(text: string, index: number, value: number): string {
  const bytes = Uint8Array.fromBase64(text.slice(TICKET_PREFIX.length), { alphabet: "base64url" });
  bytes[index] = value;
  return TICKET_PREFIX + bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The text form with `bits` XORed into the last character's 6-bit value. */
function withLastCharBits(text: string, bits: number): string {
  const index = BASE64URL.indexOf(text.at(-1)!);
  return text.slice(0, -1) + BASE64URL[index ^ bits]!;
}

Deno.test("A ticket's text form round-trips and is one shell-safe word", async (t) => {
  await t.step("encode then parse gives the same ticket", () => {
    const ticket = sampleTicket();
    const text = encodeTicket(ticket);
    assert.deepEqual(parseTicket(text), ticket);
  });

  await t.step("the text is the prefix and base64url, of a fixed length", () => {
    const text = encodeTicket(sampleTicket());
    assert.equal(text.length, TICKET_TEXT_LEN);
    assert.match(text, /^stratos-ticket-1\.[A-Za-z0-9_-]+$/);
    assert.equal(
      Uint8Array.fromBase64(text.slice(TICKET_PREFIX.length), { alphabet: "base64url" }).length,
      TICKET_BINARY_LEN,
    );
  });

  await t.step(
    "the binary layout is version, responder hash, id, secret, big-endian expiry",
    () => {
      const ticket = sampleTicket();
      const bytes = Uint8Array.fromBase64(
        encodeTicket(ticket).slice(TICKET_PREFIX.length),
        { alphabet: "base64url" },
      );
      assert.equal(bytes[0], 1);
      assert.equal(bytes.subarray(1, 33).toHex(), ticket.responder.slice(1));
      assert.deepEqual(bytes.subarray(33, 49), ticket.id);
      assert.deepEqual(bytes.subarray(49, 81), ticket.secret);
      assert.equal(new DataView(bytes.buffer).getBigUint64(81), BigInt(ticket.expiresAt));
    },
  );

  await t.step("surrounding white space (a pasted newline) is ignored", () => {
    const ticket = sampleTicket();
    assert.deepEqual(parseTicket(`  ${encodeTicket(ticket)}\n`), ticket);
  });

  await t.step("the presentation is id || secret, 48 bytes", () => {
    const ticket = sampleTicket();
    const presentation = ticketPresentation(ticket);
    assert.equal(presentation.length, TICKET_PRESENTATION_LEN);
    assert.deepEqual(presentation.subarray(0, 16), ticket.id);
    assert.deepEqual(presentation.subarray(16), ticket.secret);
  });

  await t.step("encodeTicket refuses bad fields", () => {
    const ticket = sampleTicket();
    assert.throws(() => encodeTicket({ ...ticket, responder: "Iabc" }), TypeError);
    assert.throws(() => encodeTicket({ ...ticket, id: new Uint8Array(15) }), RangeError);
    assert.throws(() => encodeTicket({ ...ticket, secret: new Uint8Array(31) }), RangeError);
    assert.throws(() => encodeTicket({ ...ticket, expiresAt: -1 }), RangeError);
    assert.throws(() => encodeTicket({ ...ticket, expiresAt: 1.5 }), RangeError);
    assert.throws(() => encodeTicket({ ...ticket, expiresAt: Number.NaN }), RangeError);
  });
});

Deno.test("parseTicket rejects malformed tickets with a SyntaxError that hides the secret", async (t) => {
  const ticket = sampleTicket();
  const good = encodeTicket(ticket);
  const body = good.slice(TICKET_PREFIX.length);
  const cases: readonly [string, string][] = [
    ["the empty string", ""],
    ["no prefix", body],
    ["another prefix", "stratos-tocket-1." + body],
    ["a future text version", "stratos-ticket-2." + body],
    ["one character short", good.slice(0, -1)],
    ["one character long", good + "A"],
    ["a character outside base64url", good.slice(0, -2) + "+" + good.slice(-1)],
    ["padding", good.slice(0, -1) + "="],
    ["an inner space", good.slice(0, 60) + " " + good.slice(61)],
    ["non-zero padding bits", withLastCharBits(good, 1)],
    ["layout version 0", withBinaryByte(good, 0, 0)],
    ["layout version 2", withBinaryByte(good, 0, 2)],
    ["an expiry beyond 2^53", withBinaryByte(good, 81, 0xff)],
  ];
  const secretHex = ticket.secret.toHex();
  for (const [label, text] of cases) {
    await t.step(`refuses ${label}`, () => {
      assert.throws(() => parseTicket(text), (error: unknown) => {
        assert.ok(error instanceof SyntaxError, String(error));
        assert.ok(error.message.includes(TICKET_PREFIX), error.message);
        assert.ok(!error.message.includes(body.slice(60, 100)), "must not quote the secret");
        assert.ok(!error.message.includes(secretHex));
        return true;
      });
    });
  }
});

Deno.test("constantTimeEqual compares bytes and lengths", () => {
  assert.ok(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])));
  assert.ok(constantTimeEqual(new Uint8Array(), new Uint8Array()));
  assert.equal(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  assert.equal(constantTimeEqual(new Uint8Array([0, 2, 3]), new Uint8Array([1, 2, 3])), false);
  assert.equal(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])), false);
});

Deno.test("TrustPolicy redeems a ticket once and refuses every bad presentation", async (t) => {
  await withTempDir(async (stateDir) => {
    const clock = manualClock();
    const policy = await TrustPolicy.open({ stateDir, now: clock.now });
    const responder = Identity.generate().identifier;
    const sat = randomIdentifier();

    await t.step("a fresh ticket redeems once, then is refused as used", async () => {
      const ticket = parseTicket(await policy.issueTicket(responder));
      assert.equal(ticket.responder, responder);
      assert.equal(ticket.expiresAt, T0 + HOUR);
      assert.equal(policy.isTrusted(sat), false);

      const first = await policy.redeemTicket(ticketPresentation(ticket), sat);
      assert.equal(first.trusted, true, first.reason);
      assert.ok(policy.isTrusted(sat));
      assert.deepEqual(policy.pinnedIdentifiers(), [sat]);

      const second = await policy.redeemTicket(ticketPresentation(ticket), randomIdentifier());
      assert.equal(second.trusted, false);
      assert.match(second.reason, /already used/);
      assert.deepEqual(policy.pinnedIdentifiers(), [sat]);
    });

    await t.step("an expired ticket is refused", async () => {
      const ticket = parseTicket(await policy.issueTicket(responder, { ttlMs: 1000 }));
      clock.set(T0 + 1000);
      const decision = await policy.redeemTicket(ticketPresentation(ticket), randomIdentifier());
      assert.equal(decision.trusted, false);
      assert.match(decision.reason, /expired/);
      clock.set(T0);
    });

    await t.step("one millisecond before expiry still works", async () => {
      const ticket = parseTicket(await policy.issueTicket(responder, { ttlMs: 1000 }));
      clock.set(T0 + 999);
      const decision = await policy.redeemTicket(ticketPresentation(ticket), randomIdentifier());
      assert.equal(decision.trusted, true, decision.reason);
      clock.set(T0);
    });

    await t.step("a wrong secret is refused and does not use up the ticket", async () => {
      const ticket = parseTicket(await policy.issueTicket(responder));
      const secret = ticket.secret.slice();
      secret[31] = secret[31]! ^ 1;
      const intruder = randomIdentifier();
      const wrong = await policy.redeemTicket(ticketPresentation({ ...ticket, secret }), intruder);
      assert.equal(wrong.trusted, false);
      assert.match(wrong.reason, /wrong secret/);
      assert.equal(policy.isTrusted(intruder), false);
      const right = await policy.redeemTicket(ticketPresentation(ticket), randomIdentifier());
      assert.equal(right.trusted, true, right.reason);
    });

    await t.step("an unknown ticket id is refused", async () => {
      const decision = await policy.redeemTicket(ticketPresentation(sampleTicket()), sat);
      assert.equal(decision.trusted, false);
      assert.match(decision.reason, /unknown ticket/);
    });

    await t.step("a presentation of the wrong length is refused as malformed", async () => {
      for (const length of [0, 47, 49]) {
        const decision = await policy.redeemTicket(new Uint8Array(length), sat);
        assert.equal(decision.trusted, false);
        assert.match(decision.reason, /malformed/);
      }
    });

    await t.step("a bad initiator identifier is a TypeError", async () => {
      const ticket = parseTicket(await policy.issueTicket(responder));
      await assert.rejects(policy.redeemTicket(ticketPresentation(ticket), "Ixyz"), TypeError);
      const decision = await policy.redeemTicket(ticketPresentation(ticket), randomIdentifier());
      assert.equal(decision.trusted, true, "the ticket must still be usable");
    });

    await t.step("issueTicket refuses a bad responder or ttl", async () => {
      await assert.rejects(policy.issueTicket("not-an-id"), TypeError);
      for (const ttlMs of [0, -1, 1.5, 31 * 24 * HOUR, Number.POSITIVE_INFINITY]) {
        await assert.rejects(policy.issueTicket(responder, { ttlMs }), RangeError);
      }
    });
  });
});

Deno.test("TrustPolicy lets exactly one of two concurrent redeems of a ticket succeed", async () => {
  await withTempDir(async (stateDir) => {
    const policy = await TrustPolicy.open({ stateDir });
    const ticket = parseTicket(await policy.issueTicket(randomIdentifier()));
    const a = randomIdentifier();
    const b = randomIdentifier();
    const decisions = await Promise.all([
      policy.redeemTicket(ticketPresentation(ticket), a),
      policy.redeemTicket(ticketPresentation(ticket), b),
    ]);
    assert.equal(decisions.filter((d) => d.trusted).length, 1);
    assert.equal([a, b].filter((id) => policy.isTrusted(id)).length, 1);
    assert.equal(policy.pinnedIdentifiers().length, 1);
  });
});

Deno.test("TrustPolicy keeps pins and used tickets across a restart", async (t) => {
  await withTempDir(async (stateDir) => {
    const responder = randomIdentifier();
    const sat = randomIdentifier();
    const pinned = randomIdentifier();
    let ticketText = "";

    await t.step("first run: pin one peer and redeem a ticket for another", async () => {
      const policy = await TrustPolicy.open({ stateDir });
      await policy.pin(pinned);
      ticketText = await policy.issueTicket(responder);
      const decision = await policy.redeemTicket(ticketPresentation(parseTicket(ticketText)), sat);
      assert.equal(decision.trusted, true, decision.reason);
    });

    await t.step("trust.json is 0600 and holds no ticket secret", async () => {
      const path = join(stateDir, TRUST_FILE_NAME);
      if (IS_POSIX) assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      const text = await Deno.readTextFile(path);
      const secret = parseTicket(ticketText).secret;
      assert.ok(!text.includes(secret.toHex()));
      assert.ok(!text.includes(secret.toBase64()));
      assert.ok(!text.includes(ticketText.slice(TICKET_PREFIX.length)));
    });

    await t.step("after reopening, both peers are still trusted", async () => {
      const policy = await TrustPolicy.open({ stateDir });
      assert.ok(policy.isTrusted(pinned));
      assert.ok(policy.isTrusted(sat));
      assert.deepEqual(policy.pinnedIdentifiers(), [pinned, sat].sort());
    });

    await t.step("after reopening, the used ticket is still refused", async () => {
      const policy = await TrustPolicy.open({ stateDir });
      const again = randomIdentifier();
      const decision = await policy.redeemTicket(
        ticketPresentation(parseTicket(ticketText)),
        again,
      );
      assert.equal(decision.trusted, false);
      assert.match(decision.reason, /already used/);
      assert.equal(policy.isTrusted(again), false);
    });

    await t.step("an unused ticket survives a restart and redeems", async () => {
      const text = await (await TrustPolicy.open({ stateDir })).issueTicket(responder);
      const policy = await TrustPolicy.open({ stateDir });
      const decision = await policy.redeemTicket(
        ticketPresentation(parseTicket(text)),
        randomIdentifier(),
      );
      assert.equal(decision.trusted, true, decision.reason);
    });

    await t.step("unpin removes a pin for good", async () => {
      const policy = await TrustPolicy.open({ stateDir });
      assert.equal(await policy.unpin(pinned), true);
      assert.equal(await policy.unpin(pinned), false);
      assert.equal(policy.isTrusted(pinned), false);
      assert.equal((await TrustPolicy.open({ stateDir })).isTrusted(pinned), false);
    });
  });
});

Deno.test("TrustPolicy prunes expired tickets when it issues a new one", async () => {
  await withTempDir(async (stateDir) => {
    const clock = manualClock();
    const policy = await TrustPolicy.open({ stateDir, now: clock.now });
    const responder = randomIdentifier();
    const used = parseTicket(await policy.issueTicket(responder, { ttlMs: 1000 }));
    await policy.redeemTicket(ticketPresentation(used), randomIdentifier());
    for (let i = 0; i < 5; i++) await policy.issueTicket(responder, { ttlMs: 1000 });
    const path = join(stateDir, TRUST_FILE_NAME);
    const count = async () =>
      (JSON.parse(await Deno.readTextFile(path)).tickets as unknown[]).length;
    assert.equal(await count(), 6);
    clock.set(T0 + 1000);
    await policy.issueTicket(responder);
    assert.equal(await count(), 1);
  });
});

Deno.test("TrustPolicy trusts only allowlisted or pinned peers unless told to trust everyone", async (t) => {
  const allowed = randomIdentifier();
  const stranger = randomIdentifier();

  await t.step("with no options nobody is trusted", async () => {
    const policy = await TrustPolicy.open({});
    assert.equal(policy.trustsEveryoneInsecure, false);
    assert.equal(policy.isTrusted(stranger), false);
    assert.equal(policy.isTrusted(""), false);
  });

  await t.step("an allowlisted identifier is trusted, others are not", async () => {
    const policy = await TrustPolicy.open({ allow: [allowed] });
    assert.ok(policy.isTrusted(allowed));
    assert.equal(policy.isTrusted(stranger), false);
    assert.deepEqual(policy.pinnedIdentifiers(), []);
  });

  await t.step("a malformed allowlist entry is a TypeError quoting it", async () => {
    await assert.rejects(
      TrustPolicy.open({ allow: [allowed, allowed.toUpperCase()] }),
      (error: unknown) =>
        error instanceof TypeError && error.message.includes(`"${allowed.toUpperCase()}"`) &&
        error.message.startsWith("allow[1]"),
    );
  });

  await t.step("pinning in memory trusts a peer; a bad identifier is a TypeError", async () => {
    const policy = await TrustPolicy.open({});
    await policy.pin(stranger);
    assert.ok(policy.isTrusted(stranger));
    await assert.rejects(policy.pin("I123"), TypeError);
  });

  await t.step("trustEveryoneInsecure trusts anyone", async () => {
    const policy = await TrustPolicy.open({ trustEveryoneInsecure: true });
    assert.ok(policy.trustsEveryoneInsecure);
    assert.ok(policy.isTrusted(stranger));
  });
});

Deno.test("TrustPolicy refuses a malformed trust.json, naming the file and the field", async (t) => {
  await withTempDir(async (stateDir) => {
    const path = join(stateDir, TRUST_FILE_NAME);
    const cases: readonly [string, unknown, RegExp][] = [
      ["an array", [], /\(top level\)/],
      ["a wrong version", { version: 2, pins: [], tickets: [] }, /version/],
      ["a bad pin", { version: 1, pins: ["Ix"], tickets: [] }, /pins\[0\]/],
      ["an unknown key", { version: 1, pins: [], tickets: [], extra: 1 }, /unknown key "extra"/],
      ["a bad ticket", { version: 1, pins: [], tickets: [{ id: "zz" }] }, /tickets\[0\]/],
    ];
    for (const [label, json, pattern] of cases) {
      await t.step(`refuses ${label}`, async () => {
        await Deno.writeTextFile(path, JSON.stringify(json), { mode: 0o600 });
        await assert.rejects(TrustPolicy.open({ stateDir }), (error: unknown) => {
          assert.ok(error instanceof SyntaxError);
          assert.ok(error.message.startsWith(path), error.message);
          assert.match(error.message, pattern);
          return true;
        });
      });
    }
  });
});
