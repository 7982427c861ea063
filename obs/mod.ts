/**
 * @module
 * Observability shared by every layer: one-line JSON logs, latency histograms, the metrics
 * registry behind `/metrics`, and the hub that fans committed events out to SSE subscribers.
 */
export { jsonLogger, type LogFields, type Logger, silentLogger } from "./log.ts";
export { LATENCY_BUCKETS_MS, LatencyHistogram, type LatencySnapshot } from "./latency.ts";
export { MetricsRegistry } from "./metrics.ts";
export { EventHub, type StreamedEvent, Subscription } from "./event_hub.ts";
