/**
 * A sat's and a proxy's ends of a real secure channel over an in-memory transport, each
 * trusting the other by allowlist: what in-process tests of the layers above the channel need.
 *
 * @module
 */

import { Identity, SecureChannel, TrustPolicy } from "../src/channel/mod.ts";
import { memoryTransportPair } from "../src/wire/mod.ts";

/** `[sat, proxy]`: the initiator's and the responder's channel. */
export async function channelPair(): Promise<[SecureChannel, SecureChannel]> {
  const sat = Identity.generate();
  const proxy = Identity.generate();
  const [a, b] = memoryTransportPair();
  return await Promise.all([
    SecureChannel.initiate(a, {
      identity: sat,
      trust: await TrustPolicy.open({ allow: [proxy.identifier] }),
    }),
    SecureChannel.respond(b, {
      identity: proxy,
      trust: await TrustPolicy.open({ allow: [sat.identifier] }),
    }),
  ]);
}
