/**
 * Runs Noise known-answer vectors in the cacophony JSON format through the engine.
 *
 * A vector passes when every handshake ciphertext, every payload read back, the handshake hash
 * (when given) and every transport message after Split match. A vector whose protocol this
 * engine does not implement is skipped, never failed.
 *
 * @module
 */

import type { CryptoBackend, KeyPair } from "./crypto_backend.ts";
import { HandshakeState, type TransportCipherStates } from "./handshake_state.ts";
import {
  type NoiseProtocol,
  parseProtocolName,
  UnsupportedProtocolError,
} from "./noise_protocol.ts";

/** One vector as published (all byte strings in lower-case hex). */
export interface NoiseVector {
  readonly protocol_name: string;
  readonly init_prologue?: string;
  readonly resp_prologue?: string;
  readonly init_static?: string;
  readonly resp_static?: string;
  readonly init_ephemeral?: string;
  readonly resp_ephemeral?: string;
  readonly init_remote_static?: string;
  readonly resp_remote_static?: string;
  readonly init_psks?: readonly string[];
  readonly resp_psks?: readonly string[];
  readonly handshake_hash?: string;
  readonly messages: readonly { readonly payload: string; readonly ciphertext: string }[];
}

/** The outcome of one vector on one backend. */
export type VectorOutcome =
  | { readonly status: "passed" }
  | { readonly status: "failed"; readonly reason: string }
  | { readonly status: "skipped"; readonly reason: string };

const EMPTY = new Uint8Array(0);

/**
 * Decodes a lower-case or upper-case hex string.
 *
 * @throws SyntaxError on odd length or a non-hex digit
 */
export function hexToBytes(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new SyntaxError(`"${hex.slice(0, 16)}..." is not a hex string`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Lower-case hex of `bytes`. */
export function bytesToHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/**
 * The vectors of a vector file: a top-level array or `{"vectors": [...]}`.
 *
 * @throws SyntaxError when the text is not JSON of either shape
 */
export function parseVectorFile(text: string): NoiseVector[] {
  const data: unknown = JSON.parse(text);
  const list = Array.isArray(data)
    ? data
    : (data && typeof data === "object" && Array.isArray((data as { vectors?: unknown }).vectors))
    ? (data as { vectors: unknown[] }).vectors
    : undefined;
  if (!list) throw new SyntaxError('expected a JSON array of vectors or {"vectors": [...]}');
  return list.map((v, i) => {
    if (!v || typeof v !== "object" || typeof (v as NoiseVector).protocol_name !== "string") {
      throw new SyntaxError(`vector ${i}: missing "protocol_name"`);
    }
    if (!Array.isArray((v as NoiseVector).messages)) {
      throw new SyntaxError(`vector ${i}: missing "messages"`);
    }
    return v as NoiseVector;
  });
}

function keyPair(backend: CryptoBackend, hex: string | undefined): KeyPair | undefined {
  return hex === undefined ? undefined : backend.dh.keyPairFromPrivate(hexToBytes(hex));
}

function party(
  protocol: NoiseProtocol,
  backend: CryptoBackend,
  vector: NoiseVector,
  initiator: boolean,
): HandshakeState {
  const side = initiator ? "init" : "resp";
  const get = (key: string) =>
    (vector as unknown as Record<string, string | undefined>)[`${side}_${key}`];
  const rs = get("remote_static");
  const psks = (initiator ? vector.init_psks : vector.resp_psks) ?? [];
  return new HandshakeState(protocol, initiator, {
    backend,
    prologue: hexToBytes(get("prologue") ?? ""),
    s: keyPair(backend, get("static")),
    rs: rs === undefined ? undefined : hexToBytes(rs),
    psks: psks.map(hexToBytes),
    ephemeralForTesting: keyPair(backend, get("ephemeral")),
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Runs one vector on one backend.
 *
 * @example
 * ```ts
 * runVector(vector, nativeBackend).status; // "passed"
 * ```
 */
export function runVector(vector: NoiseVector, backend: CryptoBackend): VectorOutcome {
  let protocol: NoiseProtocol;
  try {
    protocol = parseProtocolName(vector.protocol_name);
    if (vector.init_psks?.length || vector.resp_psks?.length) {
      if (!protocol.pattern.psk) throw new UnsupportedProtocolError("psks without a psk pattern");
    }
  } catch (error) {
    return { status: "skipped", reason: (error as Error).message };
  }
  try {
    const initiator = party(protocol, backend, vector, true);
    const responder = party(protocol, backend, vector, false);
    const handshakeLength = protocol.pattern.messages.length;
    let transport: { init: TransportCipherStates; resp: TransportCipherStates } | undefined;
    for (const [i, message] of vector.messages.entries()) {
      const payload = hexToBytes(message.payload);
      const expected = hexToBytes(message.ciphertext);
      const fromInitiator = protocol.pattern.oneWay || i % 2 === 0;
      let ciphertext: Uint8Array;
      let readBack: Uint8Array;
      if (i < handshakeLength) {
        const [sender, receiver] = fromInitiator ? [initiator, responder] : [responder, initiator];
        ciphertext = sender.writeMessage(payload);
        readBack = receiver.readMessage(ciphertext);
        if (i === handshakeLength - 1) {
          const hashes = [initiator.handshakeHash(), responder.handshakeHash()];
          if (vector.handshake_hash !== undefined) {
            const want = hexToBytes(vector.handshake_hash);
            if (!hashes.every((h) => sameBytes(h, want))) {
              return { status: "failed", reason: "handshake hash differs" };
            }
          } else if (!sameBytes(hashes[0]!, hashes[1]!)) {
            return { status: "failed", reason: "the two parties' handshake hashes differ" };
          }
          transport = { init: initiator.split(), resp: responder.split() };
        }
      } else {
        const [sender, receiver] = fromInitiator
          ? [transport!.init, transport!.resp]
          : [transport!.resp, transport!.init];
        ciphertext = sender.send.encryptWithAd(EMPTY, payload);
        readBack = receiver.receive.decryptWithAd(EMPTY, ciphertext);
      }
      if (!sameBytes(ciphertext, expected)) {
        return { status: "failed", reason: `message ${i}: ciphertext differs` };
      }
      if (!sameBytes(readBack, payload)) {
        return { status: "failed", reason: `message ${i}: payload read back differs` };
      }
    }
    if (!transport) return { status: "failed", reason: "the vector ends before the handshake" };
    return { status: "passed" };
  } catch (error) {
    return { status: "failed", reason: (error as Error).message };
  }
}

/** Counts of outcomes. */
export interface VectorTally {
  passed: number;
  failed: number;
  skipped: number;
}

/**
 * Runs every vector on every backend. A vector passes overall only if every backend passes it,
 * is skipped only if every backend skips it, and fails otherwise.
 */
export function runVectors(
  vectors: readonly NoiseVector[],
  backends: readonly CryptoBackend[],
): {
  perBackend: Map<string, VectorTally>;
  overall: VectorTally;
  failures: { protocol: string; backend: string; reason: string }[];
} {
  const perBackend = new Map<string, VectorTally>();
  for (const b of backends) perBackend.set(b.name, { passed: 0, failed: 0, skipped: 0 });
  const overall: VectorTally = { passed: 0, failed: 0, skipped: 0 };
  const failures: { protocol: string; backend: string; reason: string }[] = [];
  for (const vector of vectors) {
    const outcomes = backends.map((backend) => {
      const outcome = runVector(vector, backend);
      perBackend.get(backend.name)![outcome.status]++;
      if (outcome.status === "failed") {
        failures.push({
          protocol: vector.protocol_name,
          backend: backend.name,
          reason: outcome.reason,
        });
      }
      return outcome.status;
    });
    if (outcomes.every((s) => s === "skipped")) overall.skipped++;
    else if (outcomes.every((s) => s === "passed")) overall.passed++;
    else overall.failed++;
  }
  return { perBackend, overall, failures };
}
