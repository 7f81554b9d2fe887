/**
 * Link layer: how proxy and sat reach each other through a relay. `LinkNetwork` is the
 * interface the services use; `connectRelay` implements it over the built-in relay.
 *
 * @module
 */

export {
  FORWARDING_ADDRESS_PATTERN,
  LinkError,
  type LinkListener,
  type LinkNetwork,
  type ListenOptions,
  RegistrationError,
  type RegistrationSigner,
} from "./link_network.ts";
export {
  connectRelay,
  DEFAULT_RELAY_CLIENT_OPTIONS,
  type RelayClientOptions,
} from "./relay_client.ts";
export { Backoff, type BackoffOptions } from "./backoff.ts";
