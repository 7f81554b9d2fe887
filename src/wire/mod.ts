/**
 * Framing layer: length-prefixed binary frames over byte streams, and the MessageTransport
 * interface the secure channel runs over.
 *
 * @module
 */

export { encodeFrame, FrameDecoder, FrameError, LENGTH_PREFIX_LEN } from "./length_prefixed.ts";
export {
  memoryTransportPair,
  type MessageTransport,
  TransportClosedError,
} from "./message_transport.ts";
export { ConnTransport, type ConnTransportOptions } from "./conn_transport.ts";
