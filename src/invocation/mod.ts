/**
 * Invocation protocol: many concurrent function invocations, with chunked bodies and
 * cancellation, over one secure channel between proxy and sat.
 *
 * @module
 */

export {
  decodeInvocationMessage,
  InvocationProtocolError,
  type InvokeHeader,
  MAX_CHUNK_LEN,
  type ResultHeader,
} from "./invocation_codec.ts";
export {
  type BlobHeader,
  type DeployManifest,
  type ReadyReport,
  type SatConfig,
  sha256Hex,
} from "./deployment_codec.ts";
export {
  DeploymentError,
  type InvokeOptions,
  type InvokeOutcome,
  NotDeliveredError,
  OutputTooLargeError,
  SatConnection,
  type SatConnectionOptions,
  SatGoneError,
  type StreamedOutcome,
} from "./sat_connection.ts";
export { Cancellation } from "./cancellation.ts";
export { INITIAL_WINDOW } from "./_flow.ts";
export type { OutgoingBody } from "./_stream_sender.ts";
export {
  bodyBytes,
  BodyError,
  type BodyStream,
  type Delivery,
  type DeployedFunctions,
  type InvocationBody,
  type InvocationRunner,
  type RunOutcome,
  serveInvocations,
  type ServeInvocationsOptions,
} from "./serve_invocations.ts";
