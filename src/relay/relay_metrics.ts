/**
 * What the relay counts, served on its `--metrics HOST:PORT` listener (names prefixed
 * `stratos_relay_`): connections, links, listeners, registrations and bytes queued now, DATA
 * bytes forwarded, and connections refused by limit. All read from {@linkcode RelayServer.stats}
 * when scraped: the hot path pays nothing.
 *
 * @module
 */

import { MetricsRegistry } from "../metrics/mod.ts";
import type { RelayServer } from "./relay_server.ts";

/** The relay's metrics registry. */
export function relayMetrics(relay: RelayServer): MetricsRegistry {
  const metrics = new MetricsRegistry();
  const stat = () => relay.stats();
  metrics.gauge("stratos_relay_connections", "Node connections open.", () => stat().connections);
  metrics.gauge("stratos_relay_links", "Links open between nodes.", () => stat().links);
  metrics.gauge(
    "stratos_relay_listeners",
    "Connections listening on a forwarding address.",
    () => stat().listeners,
  );
  metrics.gauge(
    "stratos_relay_registrations",
    "Forwarding addresses registered (kept across restarts).",
    () => stat().registrations,
  );
  metrics.gauge(
    "stratos_relay_queued_bytes",
    "Bytes waiting to be written to nodes.",
    () => stat().queuedBytes,
  );
  metrics.counterFrom(
    "stratos_relay_forwarded_bytes_total",
    "DATA bytes forwarded between nodes since the start.",
    () => stat().bytesForwarded,
  );
  metrics.counterFrom(
    "stratos_relay_refused_connections_total",
    "Connections refused on accept since the start, by the limit that refused them.",
    () => {
      const refused = stat().refused;
      return [[{ limit: "connections" }, refused.connections], [
        { limit: "per_ip" },
        refused.perIp,
      ]];
    },
    ["limit"],
  );
  return metrics;
}
