/**
 * Shared set-up for the channel benchmarks: session pairs and trusted node pairs.
 *
 * @module
 */

import type { CryptoBackend } from "../src/channel/crypto_backend.ts";
import { HandshakeState } from "../src/channel/handshake_state.ts";
import { Identity } from "../src/channel/identity.ts";
import { SecureChannel } from "../src/channel/secure_channel.ts";
import { TransportSession } from "../src/channel/transport_session.ts";
import { TrustPolicy } from "../src/channel/trust_policy.ts";
import { memoryTransportPair } from "../src/wire/mod.ts";

/** Payload sizes the issue asks about; "64 KiB" is the largest payload one frame carries. */
export const SIZES: readonly { label: string; bytes: number }[] = [
  { label: "64 B", bytes: 64 },
  { label: "1 KiB", bytes: 1024 },
  { label: "16 KiB", bytes: 16 * 1024 },
  { label: "64 KiB", bytes: 65535 - 16 },
];

/** A sender and a receiver session after a real XX handshake. */
export function sessionPair(backend: CryptoBackend): [TransportSession, TransportSession] {
  const protocol = "Noise_XX_25519_ChaChaPoly_SHA256";
  const i = new HandshakeState(protocol, true, { backend, s: backend.dh.generateKeyPair() });
  const r = new HandshakeState(protocol, false, { backend, s: backend.dh.generateKeyPair() });
  const empty = new Uint8Array(0);
  r.readMessage(i.writeMessage(empty));
  i.readMessage(r.writeMessage(empty));
  r.readMessage(i.writeMessage(empty));
  return [new TransportSession(i.split()), new TransportSession(r.split())];
}

/** Two nodes that allowlist each other. */
export async function trustedNodes(): Promise<
  {
    sat: { identity: Identity; trust: TrustPolicy };
    proxy: { identity: Identity; trust: TrustPolicy };
  }
> {
  const satIdentity = Identity.generate();
  const proxyIdentity = Identity.generate();
  return {
    sat: {
      identity: satIdentity,
      trust: await TrustPolicy.open({ allow: [proxyIdentity.identifier] }),
    },
    proxy: {
      identity: proxyIdentity,
      trust: await TrustPolicy.open({ allow: [satIdentity.identifier] }),
    },
  };
}

/** One complete mutually authenticated XX channel set-up, both ends in this process. */
export async function secureHandshake(
  nodes: Awaited<ReturnType<typeof trustedNodes>>,
  backend: CryptoBackend,
): Promise<void> {
  const [a, b] = memoryTransportPair();
  const [s, p] = await Promise.all([
    SecureChannel.initiate(a, { ...nodes.sat, backend }),
    SecureChannel.respond(b, { ...nodes.proxy, backend }),
  ]);
  a.close();
  b.close();
  void s, p;
}
