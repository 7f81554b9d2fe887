/**
 * The sat as a whole: dials the relay (it opens no port), links to the proxy's forwarding
 * address, runs the Noise handshake as initiator under its trust policy, and serves
 * invocations until the link drops; then it reconnects with backoff and jitter. A trust
 * refusal on either side is final: the sat stops and reports it instead of retrying.
 *
 * @module
 */

import {
  type Identity,
  parseTicket,
  SecureChannel,
  type Ticket,
  TrustError,
  type TrustPolicy,
} from "../channel/mod.ts";
import { formatHostPort, type HostPort, type Logger } from "../cli/mod.ts";
import { type InvocationRunner, serveInvocations } from "../invocation/mod.ts";
import { Backoff, connectRelay, type LinkNetwork } from "../link/mod.ts";
import type { DeployedRunnables } from "./deployed_runnables.ts";

/** Options of SatNode.start. */
export interface SatNodeOptions {
  /** The relay to dial. */
  readonly relay: HostPort;
  /** The proxy's forwarding address. */
  readonly fwd: string;
  /** An enrollment ticket from the proxy (text form), for the first connection. */
  readonly ticket?: string;
  readonly identity: Identity;
  readonly trust: TrustPolicy;
  /** The functions this sat runs, announced to the proxy (ignored with `delivery`). */
  readonly functions: readonly string[];
  /** SHA-256 of each function's module, announced so the proxy can check it is its own. */
  readonly digests?: Readonly<Record<string, string>>;
  /**
   * Those of `functions` whose modules never read the request, announced so that the proxy
   * sends them no request headers or params (ignored with `delivery`).
   */
  readonly requestless?: readonly string[];
  /** Runs one invocation (with `delivery`: its runner, maybe instrumented). */
  readonly runner: InvocationRunner;
  /** Takes the runnables the proxy delivers, instead of fixed ones. */
  readonly delivery?: DeployedRunnables;
  readonly log: Logger;
  /** Longest wait for running invocations when closing; default 10 s. */
  readonly drainMs?: number;
  /** Largest request body it takes; larger ones get 413. Default 64 MiB. */
  readonly maxBodyBytes?: number;
  /** Called once per established channel (for tests and the demo). */
  readonly onConnected?: (proxy: string) => void;
}

/**
 * A running sat.
 *
 * @example
 * ```ts
 * const sat = SatNode.start({ relay, fwd, identity, trust, functions, runner, log });
 * const reason = await sat.stopped; // a TrustError when refused
 * ```
 */
export class SatNode {
  readonly #options: SatNodeOptions;
  readonly #stop = new AbortController();
  readonly #drain = new AbortController();
  readonly #ticket: Ticket | undefined;
  readonly #stopped: Promise<TrustError | undefined>;
  #network: LinkNetwork | undefined;
  #connected = false;

  private constructor(options: SatNodeOptions) {
    this.#options = options;
    this.#ticket = options.ticket === undefined ? undefined : parseTicket(options.ticket);
    this.#stopped = this.#run();
  }

  /**
   * Starts connecting (in the background).
   *
   * @throws SyntaxError when the ticket is malformed
   */
  static start(options: SatNodeOptions): SatNode {
    return new SatNode(options);
  }

  /** Resolves when the sat stops: undefined after close(), the TrustError on a refusal. */
  get stopped(): Promise<TrustError | undefined> {
    return this.#stopped;
  }

  /** True while a secure channel to the proxy is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /**
   * Stops: tells the proxy to send nothing more, lets the invocations running finish (at most
   * `drainMs`, default 10 s), closes the channel cleanly, and stops reconnecting.
   */
  async close(): Promise<void> {
    this.#drain.abort();
    if (!this.#connected) this.#stop.abort();
    const bound = (this.#options.drainMs ?? 10_000) + 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#stopped,
      new Promise((resolve) => (timer = setTimeout(resolve, bound))),
    ]);
    clearTimeout(timer);
    this.#stop.abort();
    this.#network?.close();
    await this.#stopped;
  }

  async #run(): Promise<TrustError | undefined> {
    const { log, identity, trust, fwd } = this.#options;
    const backoff = new Backoff();
    const signal = AbortSignal.any([this.#stop.signal, this.#drain.signal]);
    const relay = formatHostPort(this.#options.relay);
    while (!signal.aborted) {
      try {
        const network = await connectRelay(this.#options.relay);
        this.#network = network;
        if (signal.aborted) break;
        const link = await network.connect(fwd);
        // A ticket already redeemed by an earlier run is not presented again: the pin stands.
        const ticket = this.#ticket && !trust.isTrusted(this.#ticket.responder)
          ? this.#ticket
          : undefined;
        const channel = await SecureChannel.initiate(link, { identity, trust, ticket });
        backoff.reset();
        log.info("connected to the proxy", { proxy: channel.peer, fwd, relay });
        this.#options.onConnected?.(channel.peer);
        this.#connected = true;
        const { delivery, digests, requestless } = this.#options;
        const hello = delivery ? await delivery.hello() : undefined;
        const error = await serveInvocations(
          channel,
          hello?.functions ?? this.#options.functions,
          this.#options.runner,
          {
            stop: this.#drain.signal,
            drainMs: this.#options.drainMs,
            maxBodyBytes: this.#options.maxBodyBytes,
            ...(delivery
              ? {
                delivery,
                hello: {
                  digests: hello!.digests,
                  cached: hello!.cached,
                  delivery: true,
                  requestless: hello!.requestless,
                },
              }
              : { hello: { digests: digests ?? {}, delivery: false, requestless } }),
          },
        );
        this.#connected = false;
        if (!signal.aborted) {
          log.warn("lost the proxy; reconnecting", { fwd, error: error?.message });
        }
      } catch (error) {
        if (error instanceof TrustError) {
          log.error("trust refused; not retrying", { reason: error.message, peer: error.peer });
          this.#network?.close();
          return error;
        }
        if (!signal.aborted) {
          log.warn("cannot reach the proxy; retrying", {
            fwd,
            relay,
            error: (error as Error).message,
          });
        }
      } finally {
        this.#connected = false;
        this.#network?.close();
      }
      await backoff.wait(signal);
    }
    return undefined;
  }
}
