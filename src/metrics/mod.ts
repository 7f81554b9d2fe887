/**
 * Metrics in Prometheus's text format, and the `/metrics`, `/health` and `/ready` endpoints
 * every service serves.
 *
 * @module
 */

export {
  Counter,
  Gauge,
  Histogram,
  LATENCY_BUCKETS,
  MAX_SERIES,
  MetricsRegistry,
} from "./metrics_registry.ts";
export { type OpsEndpointOptions, opsResponse, serveOpsEndpoint } from "./ops_endpoint.ts";
