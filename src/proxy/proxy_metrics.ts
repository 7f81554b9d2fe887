/**
 * What the proxy counts, served as `/metrics` on its `--http` listener (names prefixed
 * `stratos_`): requests by route, method and status with latency histograms, invocations by
 * function and outcome, sats connected, handshakes by result and reason, deployments and
 * Directive reloads.
 *
 * @module
 */

import { type Counter, type Histogram, MetricsRegistry } from "../metrics/mod.ts";
import type { SatRegistry } from "./sat_registry.ts";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** The proxy's metrics. */
export class ProxyMetrics {
  readonly registry: MetricsRegistry = new MetricsRegistry();
  /** `stratos_http_requests_total{route,method,status}`. */
  readonly requests: Counter;
  /** `stratos_http_request_duration_seconds{route}`. */
  readonly latency: Histogram;
  /** `stratos_invocations_total{fn,outcome}`: ok, error, timeout, sat_gone, no_sat, cancelled. */
  readonly invocations: Counter;
  /** `stratos_handshakes_total{result,reason}`. */
  readonly handshakes: Counter;
  /** `stratos_deployments_total{result}`: what sats answered to deliveries. */
  readonly deployments: Counter;
  /** `stratos_directive_reloads_total{result}`: applied or refused. */
  readonly reloads: Counter;

  /** @param sats the registry whose size and load are reported */
  constructor(sats: SatRegistry) {
    const r = this.registry;
    this.requests = r.counter(
      "stratos_http_requests_total",
      "HTTP requests answered, by route (the Directive resource), method and status.",
      ["route", "method", "status"],
    );
    this.latency = r.histogram(
      "stratos_http_request_duration_seconds",
      "Time from request to response headers, by route.",
      ["route"],
    );
    this.invocations = r.counter(
      "stratos_invocations_total",
      "Function invocations sent to sats, by function and outcome.",
      ["fn", "outcome"],
    );
    this.handshakes = r.counter(
      "stratos_handshakes_total",
      "Secure-channel handshakes with sats, by result and reason.",
      ["result", "reason"],
    );
    this.deployments = r.counter(
      "stratos_deployments_total",
      "Deployments delivered to sats, by result.",
      ["result"],
    );
    this.reloads = r.counter(
      "stratos_directive_reloads_total",
      "Changed Directives, applied or refused.",
      ["result"],
    );
    r.gauge("stratos_sats_connected", "Sats attached over a secure channel.", () => sats.size);
    r.gauge(
      "stratos_invocations_in_flight",
      "Invocations sent and not yet answered.",
      () => sats.all().reduce((n, sat) => n + sat.inFlight, 0),
    );
  }

  /** Counts one answered request. */
  request(route: string, method: string, status: number, seconds: number): void {
    this.requests.inc({
      route,
      method: METHODS.has(method) ? method : "OTHER",
      status: String(status),
    });
    this.latency.observe({ route }, seconds);
  }
}
