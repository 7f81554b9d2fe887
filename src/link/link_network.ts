/**
 * The link layer that proxy and sat use to reach each other through a relay. It is an
 * interface so that a relay built on an existing messaging engine (e.g. a NATS cluster) can
 * replace the built-in relay without touching the services: each link is a MessageTransport
 * carrying opaque (already encrypted) messages.
 *
 * @module
 */

import type { MessageTransport } from "../wire/mod.ts";

/** Signs registration challenges with a node's identity (an `Identity` satisfies it). */
export interface RegistrationSigner {
  /** The node's Ed25519 public key (32 bytes). */
  readonly publicKey: Uint8Array;
  /** An Ed25519 signature of `message`. */
  sign(message: Uint8Array): Uint8Array;
}

/** A registered forwarding address on which links arrive (the proxy's side). */
export interface LinkListener {
  /** The forwarding address, `FWD_` + 16 lower-case hex digits. */
  readonly address: string;
  /** The next incoming link, or undefined once the listener or its network is closed. */
  accept(): Promise<MessageTransport | undefined>;
  /** Stops accepting; links already accepted stay open. */
  close(): void;
}

/** Options of LinkNetwork.listen. */
export interface ListenOptions {
  /** Reclaim this address (it must belong to the same identity); default: a new one. */
  readonly address?: string;
}

/** One node's connection to the relay network. */
export interface LinkNetwork {
  /**
   * Registers the signer's identity and listens on a forwarding address.
   *
   * @throws RegistrationError when the relay refuses (e.g. the address belongs to another
   *   identity)
   */
  listen(signer: RegistrationSigner, options?: ListenOptions): Promise<LinkListener>;
  /**
   * Opens a link to a forwarding address.
   *
   * @throws LinkError when the address is unknown or its owner is not connected
   */
  connect(address: string): Promise<MessageTransport>;
  /** Resolves once the connection to the relay is lost or closed (with the error, if any). */
  readonly closed: Promise<Error | undefined>;
  /** Closes the connection and every link on it. */
  close(): void;
}

/** The relay refused a registration. */
export class RegistrationError extends Error {
  override readonly name = "RegistrationError";
}

/** A link could not be opened (unknown address, owner offline, limits). */
export class LinkError extends Error {
  override readonly name = "LinkError";
}

/** Pattern of a forwarding address. */
export const FORWARDING_ADDRESS_PATTERN: RegExp = /^FWD_[0-9a-f]{16}$/;
