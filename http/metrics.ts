/** A small Prometheus registry: counters, gauges read at scrape time, and latency summaries. */

type Labels = Record<string, string>;

interface Family {
  help: string;
  type: "counter" | "gauge" | "summary";
  collect(): Array<[Labels, number, string?]>;
}

/** Latency observations kept in a bounded window for quantiles. */
export class LatencyWindow {
  readonly #values: number[] = [];
  readonly #limit: number;
  #count = 0;
  #sum = 0;

  constructor(limit = 2048) {
    this.#limit = limit;
  }

  observe(seconds: number): void {
    this.#count++;
    this.#sum += seconds;
    if (this.#values.length >= this.#limit) this.#values.splice(0, this.#values.length / 2);
    this.#values.push(seconds);
  }

  quantile(q: number): number {
    if (this.#values.length === 0) return Number.NaN;
    const sorted = [...this.#values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  }

  get count(): number {
    return this.#count;
  }

  get sum(): number {
    return this.#sum;
  }
}

/** Metric families rendered as Prometheus text exposition format 0.0.4. */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();
  readonly #refreshers = new Map<string, () => Promise<void>>();

  /** A gauge or counter whose samples are read when scraped. */
  collect(
    name: string,
    type: "counter" | "gauge",
    help: string,
    read: () => Array<[Labels, number]> | Promise<Array<[Labels, number]>>,
  ): void {
    let cache: Array<[Labels, number]> = [];
    this.#families.set(name, { help, type, collect: () => cache });
    this.#refreshers.set(name, async () => {
      cache = await read();
    });
  }

  /** A latency summary with p50, p90 and p99. */
  summary(name: string, help: string, windows: () => Array<[Labels, LatencyWindow]>): void {
    this.#families.set(name, {
      help,
      type: "summary",
      collect: () =>
        windows().flatMap(([labels, window]) => [
          ...[0.5, 0.9, 0.99].map((q): [Labels, number] => [
            { ...labels, quantile: String(q) },
            window.quantile(q),
          ]),
          [labels, window.sum, "_sum"] as [Labels, number, string],
          [labels, window.count, "_count"] as [Labels, number, string],
        ]),
    });
  }

  /** The exposition text. */
  async render(): Promise<string> {
    await Promise.all([...this.#refreshers.values()].map((refresh) => refresh()));
    const lines: string[] = [];
    for (const [name, family] of this.#families) {
      lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`);
      for (const [labels, value, suffix] of family.collect()) {
        lines.push(`${name}${suffix ?? ""}${formatLabels(labels)} ${formatValue(value)}`);
      }
    }
    return lines.join("\n") + "\n";
  }
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  const body = entries.map(([key, value]) =>
    `${key}="${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`
  );
  return `{${body.join(",")}}`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
