/**
 * Framing layer: length-prefixed binary frames over byte streams, the MessageTransport
 * interface the secure channel runs over, and the relay protocol's messages.
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
export {
  BatchedFrameWriter,
  type BatchedFrameWriterOptions,
  DATA_HEADER_LEN,
  decodeRelayMessage,
  DEFAULT_LINK_WINDOW,
  encodeDataFrame,
  encodeRelayFrame,
  encodeRelayMessage,
  FORWARDING_ADDRESS_LEN,
  FORWARDING_ADDRESS_PREFIX,
  type FrameSink,
  INITIAL_LINK_CREDIT,
  MAX_LINK_ID,
  MAX_LINK_MESSAGE_LEN,
  MAX_LINK_WINDOW,
  MAX_REASON_LEN,
  MAX_RELAY_MESSAGE_LEN,
  readU32,
  REGISTER_DOMAIN,
  registrationMessage,
  RELAY_CHALLENGE_LEN,
  RELAY_LINK_ID_FLAG,
  RELAY_PUBLIC_KEY_LEN,
  RELAY_SIGNATURE_LEN,
  type RelayLog,
  type RelayLogLevel,
  type RelayMessage,
  RelayMessageType,
  WRITE_BATCH_LEN,
  writeU32,
} from "./relay_protocol.ts";
export {
  allocBytes,
  type ByteAllocator,
  concatBytes,
  copyBytes,
  decodeUtf8Strict,
  MAX_SLAB_ALLOC,
} from "./bytes.ts";
