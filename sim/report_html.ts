/** A self-contained HTML report: inline SVG charts, no scripts, fonts or links to fetch. */
import type { LiveSummary } from "./live_summary.ts";

const W = 760;
const H = 260;
const PAD = 40;
const COLORS: Record<string, string> = {
  pending: "#9aa5b1",
  initiated: "#5b8def",
  received: "#36b3c9",
  activating: "#a47de8",
  activated: "#2e9e5b",
  retrying: "#e8a33d",
  timed_out: "#d46a3a",
  failed: "#d64545",
  cancelled: "#666",
};

/** The report page of a live run. */
export function reportHtml(s: LiveSummary): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flotilla sim report: ${
    esc(s.policy.name)
  }</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}svg{display:block;margin:1em 0}
.legend span{margin-right:1em}</style></head><body>
<h1>Live simulation: ${esc(s.policy.name)}, ${s.devices} devices</h1>
<p>State <b>${
    esc(s.state)
  }</b>: ${s.activated} activated, ${s.failed} failed, ${s.cancelled} cancelled,
${s.pending} pending. Rollout ${s.rolloutSeconds} s, ${s.devicesPerSecond} devices/s.
Latency p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms. Seed ${s.seed}, ${s.workers} workers,
${s.connection === "gateway" ? "gateway mode" : "one connection per device"}.</p>
${s.haltReason ? `<p>Halted: ${esc(String(s.haltReason.message ?? s.haltReason.kind))}</p>` : ""}
<h2>Devices per state over time</h2>${timelineChart(s)}
<h2>Update latency (INITIATE to activation confirmed)</h2>${
    histogram(
      bins(s.latencies, 30),
      "ms",
    )
  }
<h2>Attempts per device</h2>${
    histogram(
      Object.entries(s.attempts).map(([n, count]) => ({ label: n, count })),
      "INITIATEs",
    )
  }
<h2>Stages</h2><table><tr><th>stage</th><th>percent</th><th>devices</th><th>activated</th>
<th>failed</th><th>cancelled</th><th>pending</th></tr>
${
    s.stages.map((st, i) =>
      `<tr><td>${i + 1}</td><td>${st.percent}%</td><td>${st.devices}</td><td>${st.activated}</td>` +
      `<td>${st.failed}</td><td>${st.cancelled}</td><td>${st.pending}</td></tr>`
    ).join("\n")
  }</table>
<h2>Faults injected</h2><p>${
    Object.entries(s.injected).map(([k, n]) => `${esc(k)}: ${n}`).join(", ") || "none"
  }</p></body></html>
`;
}

function timelineChart(s: LiveSummary): string {
  const samples = s.timeline;
  if (samples.length === 0) return "<p>No samples.</p>";
  const end = Math.max(1, samples.at(-1)!.t);
  const max = Math.max(1, s.devices);
  const x = (t: number) => PAD + (t / end) * (W - 2 * PAD);
  const y = (n: number) => H - PAD + -(n / max) * (H - 2 * PAD);
  const states = Object.keys(COLORS).filter((state) => samples.some((p) => p.counts[state]));
  const lines = states.map((state) =>
    `<polyline fill="none" stroke="${COLORS[state]}" stroke-width="2" points="${
      samples.map((p) => `${x(p.t).toFixed(1)},${y(p.counts[state] ?? 0).toFixed(1)}`).join(" ")
    }"/>`
  );
  const boundaries = samples.filter((p, i) => i > 0 && p.stage !== samples[i - 1]!.stage).map(
    (p) =>
      `<line x1="${x(p.t)}" x2="${x(p.t)}" y1="${PAD}" y2="${H - PAD}" stroke="#999" ` +
      `stroke-dasharray="4 3"/><text x="${x(p.t) + 3}" y="${PAD + 10}" font-size="11">stage ${
        p.stage + 1
      }</text>`,
  );
  return `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">
${axes(`${(end / 1000).toFixed(1)} s`, String(max))}${boundaries.join("")}${lines.join("")}</svg>
<p class="legend">${
    states.map((st) => `<span style="color:${COLORS[st]}">&#9632; ${st}</span>`).join("")
  }</p>`;
}

function histogram(data: { label: string; count: number }[], unit: string): string {
  if (data.length === 0) return "<p>No data.</p>";
  const max = Math.max(1, ...data.map((d) => d.count));
  const width = (W - 2 * PAD) / data.length;
  const bars = data.map((d, i) => {
    const h = (d.count / max) * (H - 2 * PAD);
    return `<rect x="${(PAD + i * width).toFixed(1)}" y="${(H - PAD - h).toFixed(1)}" ` +
      `width="${Math.max(1, width - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="#5b8def">` +
      `<title>${esc(d.label)} ${unit}: ${d.count}</title></rect>`;
  });
  const step = Math.ceil(data.length / 10);
  const labels = data.filter((_, i) => i % step === 0).map((d) =>
    `<text x="${PAD + data.indexOf(d) * width}" y="${H - PAD + 14}" font-size="10">${
      esc(d.label)
    }</text>`
  );
  return `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">
${axes(unit, String(max))}${bars.join("")}${labels.join("")}</svg>`;
}

function bins(sorted: number[], count: number): { label: string; count: number }[] {
  if (sorted.length === 0) return [];
  const min = sorted[0]!;
  const size = Math.max(1, Math.ceil((sorted.at(-1)! - min + 1) / count));
  const out = Array.from(
    { length: count },
    (_, i) => ({ label: String(min + i * size), count: 0 }),
  );
  for (const value of sorted) out[Math.min(count - 1, Math.floor((value - min) / size))]!.count++;
  return out;
}

function axes(xLabel: string, yLabel: string): string {
  return `<line x1="${PAD}" y1="${H - PAD}" x2="${W - PAD}" y2="${H - PAD}" stroke="#333"/>` +
    `<line x1="${PAD}" y1="${PAD}" x2="${PAD}" y2="${H - PAD}" stroke="#333"/>` +
    `<text x="${W - PAD}" y="${H - 8}" font-size="11" text-anchor="end">${esc(xLabel)}</text>` +
    `<text x="4" y="${PAD - 6}" font-size="11">${esc(yLabel)}</text>`;
}

function esc(text: string): string {
  return text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
