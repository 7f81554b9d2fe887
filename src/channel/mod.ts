/**
 * Secure channel layer: the Noise engine, crypto backends, identities and trust, and the
 * SecureChannel that proxy and sats speak through an untrusted relay. Other layers import the
 * channel only through this file.
 *
 * @module
 */

export {
  AuthenticationError,
  type CipherName,
  type CryptoBackend,
  type HashName,
  type KeyPair,
} from "./crypto_backend.ts";
export {
  backendByName,
  BACKENDS,
  defaultBackend,
  nativeBackend,
  portableBackend,
} from "./backends.ts";
export { CipherState, MAX_NONCE, NonceExhaustedError } from "./cipher_state.ts";
export { SymmetricState } from "./symmetric_state.ts";
export { type HandshakePattern, handshakePattern, PATTERN_NAMES } from "./handshake_pattern.ts";
export {
  type NoiseProtocol,
  parseProtocolName,
  UnsupportedProtocolError,
} from "./noise_protocol.ts";
export {
  HandshakeError,
  HandshakeState,
  type HandshakeStateOptions,
  MAX_MESSAGE_LEN,
  type TransportCipherStates,
} from "./handshake_state.ts";
export {
  MAX_FRAME_LEN,
  MAX_PAYLOAD_LEN,
  REKEY_INTERVAL,
  REPLAY_WINDOW,
  SessionClosedError,
  TransportSession,
  type TransportSessionOptions,
} from "./transport_session.ts";
export {
  CHANNEL_PROTOCOL,
  SecureChannel,
  type SecureChannelOptions,
  TrustError,
} from "./secure_channel.ts";
export { identifierOf, Identity, isIdentifier, verifyIdentitySignature } from "./identity.ts";
export {
  ensureStateDir,
  IDENTITY_FILE_NAME,
  loadIdentity,
  loadOrCreateIdentity,
  readStateFile,
  type Role,
  ROLES,
  stateDirPath,
  StateFileError,
  writeStateFile,
} from "./state_dir.ts";
export { encodeTicket, parseTicket, type Ticket } from "./ticket.ts";
export { type TrustDecision, TrustPolicy, type TrustPolicyOptions } from "./trust_policy.ts";
export { constantTimeEqual } from "./constant_time.ts";
export { parseVectorFile, runVector, runVectors } from "./noise_vectors.ts";
