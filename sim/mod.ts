/**
 * @module
 * The simulator. In simulated time (`--virtual`): the real rollout engine against in-memory
 * devices with injected faults and latency, on a heap-based simulated clock; deterministic per seed.
 * Live (`runLive`): an orchestrator and real device agents in workers over real MQTT and HTTP.
 */
export { SimClock } from "./sim_clock.ts";
export { mulberry32, seededTokens, stream } from "./random.ts";
export {
  activateOutcome,
  type FaultMix,
  initiateOutcome,
  latency,
  type LatencyRange,
  NO_FAULTS,
  parseFaults,
  parseLatency,
} from "./faults.ts";
export { runVirtual, setupVirtual, virtualDeviceId, type VirtualOptions } from "./virtual.ts";
export {
  formatSummary,
  type RunFacts,
  type SimStage,
  type SimSummary,
  summarize,
} from "./summary.ts";
export { GATEWAY_ABOVE, type LiveOptions, runLive } from "./live.ts";
export { loadSimKeys, type SimKeys } from "./keys.ts";
export {
  type LatencyStats,
  latencyStats,
  type LiveSample,
  type LiveSummary,
  summarizeLive,
} from "./live_summary.ts";
export { formatProgress, progressJson, TerminalProgress } from "./progress.ts";
export { formatLiveSummary, writeReport } from "./report.ts";
