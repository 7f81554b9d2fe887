/**
 * The proxy as a whole: registers at the relay under a forwarding address it keeps across
 * restarts, accepts secure channels from sats (it is the Noise responder), enrolls sats with
 * one-time tickets, and serves HTTP by Directive through them.
 *
 * @module
 */

import { join } from "node:path";
import { type Identity, SecureChannel, TrustError, type TrustPolicy } from "../channel/mod.ts";
import { readStateFile, writeStateFile } from "../channel/state_dir.ts";
import { formatHostPort, type HostPort, type Logger } from "../cli/mod.ts";
import { DeploymentError, SatConnection } from "../invocation/mod.ts";
import {
  Backoff,
  connectRelay,
  FORWARDING_ADDRESS_PATTERN,
  type LinkListener,
  type LinkNetwork,
  RegistrationError,
} from "../link/mod.ts";
import type { MessageTransport } from "../wire/mod.ts";
import { createProxyHandler, type RouteResolution } from "./proxy_handler.ts";
import { SatRegistry } from "./sat_registry.ts";
import { ProxyMetrics } from "./proxy_metrics.ts";
import type { Deployment } from "./deployment.ts";

/** Where the proxy remembers its forwarding address, inside its state folder. */
export const ADDRESS_FILE_NAME = "proxy.json";
/** Handshakes with sats in progress at once; more links are closed at once. */
export const MAX_PENDING_HANDSHAKES = 64;

/** The relay address a sat uses when it is given no --relay. */
export const DEFAULT_RELAY = "127.0.0.1:4000";

/** Options of ProxyNode.start. */
export interface ProxyNodeOptions {
  /** The relay to register at. */
  readonly relay: HostPort;
  /** Where to serve HTTP. */
  readonly http: HostPort;
  /** Resolves a request against the current Directive. */
  readonly resolve: (method: string, path: string) => RouteResolution;
  /** This proxy's state folder (identity, trust, forwarding address). */
  readonly stateDir: string;
  readonly identity: Identity;
  readonly trust: TrustPolicy;
  readonly log: Logger;
  /** Prints a line for the user (stdout): the address, `listening on`, `sat command:`. */
  readonly announce: (line: string) => void;
  /** Request body limit in bytes. */
  readonly maxBodyBytes?: number;
  /** Time limit per invocation in ms. */
  readonly timeoutMs?: number;
  /** Lifetime of each enrollment ticket; default 1 hour. */
  readonly ticketTtlMs?: number;
  /** The command sats are started with, before its flags; default "deno task sat". */
  readonly satCommand?: string;
  /**
   * What sats run: delivered to each sat that takes deliveries, and the only module digests a
   * sat is picked with. Without it, sats run what they announce.
   */
  readonly deployment?: Deployment;
  /** Longest wait for requests in flight when closing; default 10 s. */
  readonly drainMs?: number;
  /** How long a sat may take to apply a deployment; default 60 s. */
  readonly deployTimeoutMs?: number;
}

/**
 * A running proxy.
 *
 * @example
 * ```ts
 * const proxy = await ProxyNode.start({ relay, http, resolve, stateDir, identity, trust, log, announce });
 * await proxy.close();
 * ```
 */
export class ProxyNode {
  readonly #options: ProxyNodeOptions;
  readonly #sats: SatRegistry;
  readonly #metrics: ProxyMetrics;
  readonly #stop = new AbortController();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #pendingHandshakes = new Set<MessageTransport>();
  #address: string | undefined;
  #network: LinkNetwork | undefined;
  #listener: LinkListener | undefined;
  #relayLoop: Promise<void> = Promise.resolve();
  #ticketTimer: ReturnType<typeof setTimeout> | undefined;
  #deployment: Deployment | undefined;
  #closing: Promise<void> = Promise.resolve();
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #registered!: (address: string) => void;
  #failed!: (error: Error) => void;

  private constructor(options: ProxyNodeOptions) {
    this.#options = options;
    this.#sats = new SatRegistry(() =>
      options.log.debug("sats connected", { count: this.#sats.size })
    );
    this.#deployment = options.deployment;
    if (options.deployment) this.#sats.accept(digestsOf(options.deployment));
    this.#metrics = new ProxyMetrics(this.#sats);
    const handler = createProxyHandler({
      resolve: options.resolve,
      sats: this.#sats,
      maxBodyBytes: options.maxBodyBytes,
      timeoutMs: options.timeoutMs,
      log: options.log,
      metrics: this.#metrics,
      ops: {
        metrics: this.#metrics.registry,
        notReady: () => this.#sats.size === 0 ? "no sat is attached" : undefined,
      },
    });
    this.#server = Deno.serve({
      hostname: options.http.hostname,
      port: options.http.port,
      onListen: () => {},
      onError: (error) => {
        options.log.error("HTTP handler failed", { error: String(error) });
        return new Response("internal error", { status: 500 });
      },
    }, handler);
  }

  /**
   * Starts serving HTTP and registers at the relay; resolves once the forwarding address is
   * known (printed by `announce`).
   *
   * @throws RegistrationError when the relay refuses the registration (e.g. the remembered
   *   address belongs to another identity)
   */
  static async start(options: ProxyNodeOptions): Promise<ProxyNode> {
    const proxy = new ProxyNode(options);
    options.announce(`listening on ${formatHostPort(proxy.httpAddr)}`);
    const remembered = await readRememberedAddress(options.stateDir);
    const registered = new Promise<string>((resolve, reject) => {
      proxy.#registered = resolve;
      proxy.#failed = reject;
    });
    proxy.#relayLoop = proxy.#runRelayLoop(remembered);
    try {
      await registered;
    } catch (error) {
      await proxy.close();
      throw error;
    }
    return proxy;
  }

  /** The forwarding address sats attach to. */
  get address(): string {
    return this.#address!;
  }

  /** Where HTTP is served. */
  get httpAddr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** Connected sats. */
  get sats(): SatRegistry {
    return this.#sats;
  }

  /** What the proxy counts (served as /metrics). */
  get metrics(): ProxyMetrics {
    return this.#metrics;
  }

  /**
   * Rolls a new deployment out: every connected sat that takes deliveries gets it, and sats
   * running the old or the new modules are both picked until the rollout is done and requests
   * of the old version had time to finish (the invocation time limit). Resolves when every sat
   * has answered (or failed, which is logged: that sat keeps serving what still matches).
   */
  async rollOut(deployment: Deployment): Promise<void> {
    const old = this.#deployment;
    this.#deployment = deployment;
    clearTimeout(this.#graceTimer);
    const both = digestsOf(deployment);
    if (old) {
      for (const [key, digests] of digestsOf(old)) {
        both.set(key, new Set([...digests, ...both.get(key) ?? []]));
      }
    }
    this.#sats.accept(both);
    await Promise.all(this.#sats.all().map((sat) => this.#deployTo(sat, deployment)));
    this.#graceTimer = setTimeout(() => {
      if (this.#deployment === deployment) this.#sats.accept(digestsOf(deployment));
    }, this.#options.timeoutMs ?? 30_000);
  }

  async #deployTo(sat: SatConnection, deployment: Deployment): Promise<void> {
    if (!sat.delivery || sat.ended) return;
    const { log } = this.#options;
    const started = performance.now();
    try {
      const functions = await sat.deploy(deployment.manifest, deployment.files, {
        timeoutMs: this.#options.deployTimeoutMs,
      });
      this.#metrics.deployments.inc({ result: "applied" });
      log.info("sat runs the deployment", {
        sat: sat.peer,
        functions: [...functions.keys()],
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      if (sat.ended) return;
      this.#metrics.deployments.inc({
        result: error instanceof DeploymentError ? "refused" : "failed",
      });
      log.warn(
        error instanceof DeploymentError
          ? "a sat refused the deployment"
          : "could not deliver the deployment",
        { sat: sat.peer, error: (error as Error).message },
      );
    }
  }

  /**
   * Stops gracefully: accepts no new HTTP connection or sat, lets the requests in flight finish
   * (at most `drainMs`, default 10 s; the sats stay attached meanwhile), then closes every
   * channel and the relay connection.
   */
  async close(): Promise<void> {
    if (this.#stop.signal.aborted) return await this.#closing;
    this.#stop.abort();
    this.#closing = (async () => {
      clearTimeout(this.#ticketTimer);
      clearTimeout(this.#graceTimer);
      for (const transport of this.#pendingHandshakes) transport.close();
      // shutdown() (not an abort signal, which drops them) lets requests in flight finish.
      const drained = this.#server.shutdown();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        drained,
        new Promise((resolve) => (timer = setTimeout(resolve, this.#options.drainMs ?? 10_000))),
      ]);
      clearTimeout(timer);
      this.#listener?.close();
      this.#network?.close();
      await this.#sats.closeAll();
      await this.#relayLoop;
    })();
    await this.#closing;
  }

  async #runRelayLoop(remembered: string | undefined): Promise<void> {
    const { log } = this.#options;
    const backoff = new Backoff();
    const signal = this.#stop.signal;
    let wanted = remembered;
    while (!signal.aborted) {
      try {
        const network = await connectRelay(this.#options.relay);
        this.#network = network;
        if (signal.aborted) break;
        const listener = await network.listen(this.#options.identity, { address: wanted });
        this.#listener = listener;
        backoff.reset();
        if (listener.address !== this.#address) await this.#onNewAddress(listener.address);
        wanted = listener.address;
        log.info("registered at the relay", {
          relay: formatHostPort(this.#options.relay),
          address: listener.address,
        });
        for (let link = await listener.accept(); link; link = await listener.accept()) {
          this.#admit(link);
        }
        // accept() ends when the connection is lost, or when another connection of this same
        // identity took the address over (the connection then stays up): register again.
        const lost = await Promise.race([network.closed, Promise.resolve(null)]);
        if (!signal.aborted) {
          log.warn(
            lost === null
              ? "another connection of this proxy's identity took its address; registering again"
              : "lost the relay; reconnecting",
            { error: lost?.message },
          );
        }
      } catch (error) {
        if (error instanceof RegistrationError) {
          log.error("the relay refused this proxy's registration", { error: error.message });
          this.#failed(error);
          return;
        }
        if (!signal.aborted) {
          log.warn("cannot reach the relay; retrying", {
            relay: formatHostPort(this.#options.relay),
            error: (error as Error).message,
          });
        }
      } finally {
        this.#listener?.close();
        this.#network?.close();
      }
      await backoff.wait(signal);
    }
  }

  async #onNewAddress(address: string): Promise<void> {
    this.#address = address;
    await writeStateFile(join(this.#options.stateDir, ADDRESS_FILE_NAME), { address });
    this.#options.announce(address);
    await this.#announceSatCommand();
    this.#registered(address);
  }

  /** Issues a fresh ticket and prints the command that enrolls a sat with it. */
  async #announceSatCommand(): Promise<void> {
    const { identity, trust, relay } = this.#options;
    const ttlMs = this.#options.ticketTtlMs ?? 60 * 60 * 1000;
    const ticket = await trust.issueTicket(identity.identifier, { ttlMs });
    const relayText = formatHostPort(relay);
    const relayFlag = relayText === DEFAULT_RELAY ? "" : ` --relay ${relayText}`;
    const command = this.#options.satCommand ?? "deno task sat";
    this.#options.announce(
      `sat command: ${command} --fwd ${this.#address}${relayFlag} --ticket ${ticket}`,
    );
    // An unused ticket expires: print a fresh command then, so the last line always works.
    clearTimeout(this.#ticketTimer);
    this.#ticketTimer = setTimeout(() => {
      if (!this.#stop.signal.aborted) this.#announceSatCommand().catch(() => {});
    }, ttlMs);
  }

  #admit(link: MessageTransport): void {
    const { log, identity, trust } = this.#options;
    if (this.#stop.signal.aborted) {
      link.close(); // stopping: no new sat
      return;
    }
    if (this.#pendingHandshakes.size >= MAX_PENDING_HANDSHAKES) {
      // A flood of half-done handshakes costs this link only, not the sats being served.
      this.#metrics.handshakes.inc({ result: "refused", reason: "busy" });
      log.warn("refused a link: too many handshakes in progress", {
        limit: MAX_PENDING_HANDSHAKES,
      });
      link.close();
      return;
    }
    this.#pendingHandshakes.add(link);
    (async () => {
      try {
        const channel = await SecureChannel.respond(link, { identity, trust });
        this.#pendingHandshakes.delete(link);
        this.#metrics.handshakes.inc({
          result: "ok",
          reason: channel.enrolled ? "enrolled" : "trusted",
        });
        if (channel.enrolled) {
          log.info("enrolled a new sat", { sat: channel.peer });
          await this.#announceSatCommand();
        }
        const sat = await SatConnection.accept(channel);
        this.#sats.add(sat);
        log.info("sat connected", {
          sat: sat.peer,
          functions: [...sat.functions.keys()],
          delivery: sat.delivery,
        });
        if (this.#deployment) await this.#deployTo(sat, this.#deployment);
        const error = await sat.closed;
        log.info("sat disconnected", { sat: sat.peer, error: error?.message });
      } catch (error) {
        if (error instanceof TrustError) {
          this.#metrics.handshakes.inc({ result: "refused", reason: trustReason(error.message) });
          log.warn("refused a sat", { sat: error.peer, reason: error.message });
        } else if (!this.#stop.signal.aborted) {
          this.#metrics.handshakes.inc({ result: "failed", reason: (error as Error).name });
          log.warn("a sat failed to connect", { error: (error as Error).message });
        }
      } finally {
        this.#pendingHandshakes.delete(link);
      }
    })();
  }
}

/** A short, bounded label for a trust refusal (its message names peers; labels must not). */
function trustReason(message: string): string {
  if (/ticket/i.test(message)) return "ticket";
  if (/not trusted|unknown|not allowed/i.test(message)) return "untrusted";
  if (/pin/i.test(message)) return "pinned";
  return "other";
}

/** The module digest of each fn of `deployment`. */
function digestsOf(deployment: Deployment): Map<string, Set<string>> {
  return new Map(
    Object.entries(deployment.manifest.runnables).map(([key, sha]) => [key, new Set([sha])]),
  );
}

async function readRememberedAddress(stateDir: string): Promise<string | undefined> {
  const saved = await readStateFile(join(stateDir, ADDRESS_FILE_NAME)) as
    | { address?: unknown }
    | undefined;
  const address = saved?.address;
  return typeof address === "string" && FORWARDING_ADDRESS_PATTERN.test(address)
    ? address
    : undefined;
}
