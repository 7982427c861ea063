/** The live simulation's report files and its summary table. */
import { join } from "node:path";
import { writeFileAtomic } from "../io/files.ts";
import type { LiveSummary } from "./live_summary.ts";
import { reportHtml } from "./report_html.ts";

/** Writes `report.json` (the summary with its timeline and latencies) and `report.html` in `dir`. */
export async function writeReport(dir: string, summary: LiveSummary): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, "report.json"), JSON.stringify(summary, null, 2) + "\n");
  await writeFileAtomic(join(dir, "report.html"), reportHtml(summary));
}

/** The summary as lines for people. */
export function formatLiveSummary(s: LiveSummary): string {
  const mb = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MB`;
  const lines = [
    `policy ${s.policy.name}${s.policy.sha256 ? ` (sha256 ${s.policy.sha256.slice(0, 12)})` : ""}` +
    `, ${s.devices} devices, seed ${s.seed}, ${s.workers} workers, ` +
    `${s.connection === "gateway" ? "gateway mode" : "one connection per device"}`,
    `state ${s.state}: ${s.activated} activated, ${s.failed} failed, ` +
    `${s.cancelled} cancelled, ${s.pending} pending`,
    `rollout ${s.rolloutSeconds} s, ${s.devicesPerSecond} devices/s; ` +
    `latency p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms, max ${s.latencyMs.max} ms`,
    `setup: register ${s.registerSeconds} s, connect ${s.connectSeconds} s; wall ${s.wallSeconds} s; ` +
    `peak RSS ${mb(s.rssPeakBytes)} (${s.inProcess ? "orchestrator and devices" : "devices"})`,
  ];
  const attempts = Object.entries(s.attempts).map(([n, count]) => `${n}: ${count}`);
  lines.push(`attempts per device  ${attempts.length ? attempts.join(", ") : "none"}`);
  const injected = Object.entries(s.injected).map(([k, n]) => `${k} ${n}`);
  if (injected.length) lines.push(`faults injected  ${injected.join(", ")}`);
  const rejected = Object.entries(s.rejected).map(([k, n]) => `${k} ${n}`);
  if (rejected.length) lines.push(`frames refused by devices  ${rejected.join(", ")}`);
  if (s.haltReason) lines.push(`halted: ${String(s.haltReason.message ?? s.haltReason.kind)}`);
  if (s.pauseReason) lines.push(`paused: ${String(s.pauseReason.message ?? s.pauseReason.kind)}`);
  return lines.join("\n");
}
