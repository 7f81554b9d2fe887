/**
 * The error for a database or cache connection (PostgreSQL, Redis) that could not be made or
 * broke, as opposed to an error the server reported about a statement.
 *
 * @module
 */

/** Why a connection failed apart from a server error. */
export type ConnectionFailure =
  | "connect"
  | "tls"
  | "authentication"
  | "lost"
  | "timeout"
  | "closed"
  | "protocol";

/**
 * The connection to the database or cache could not be made, or broke. `stage` says where: `connect`
 * (TCP or socket), `tls`, `authentication`, `lost` (the server went away mid-use), `timeout`,
 * `closed` (the client was closed), `protocol` (the server sent something malformed).
 */
export class DatabaseConnectionError extends Error {
  /** Where it failed. */
  readonly stage: ConnectionFailure;

  constructor(stage: ConnectionFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DatabaseConnectionError";
    this.stage = stage;
  }
}
