/**
 * Relay layer: the public service that proxies and sats dial out to, which moves link frames
 * it cannot read between them. The protocol is in src/wire/relay_protocol.ts; the client side
 * is in src/link/.
 *
 * @module
 */

export {
  DEFAULT_RELAY_LIMITS,
  DEFAULT_RELAY_PORT,
  MIN_RELAY_FRAME_LEN,
  type RelayLimits,
  RelayServer,
  type RelayServerOptions,
  type RelayStats,
} from "./relay_server.ts";
export { REGISTRATIONS_FILE_NAME } from "./_registrations.ts";
export { relayMetrics } from "./relay_metrics.ts";
