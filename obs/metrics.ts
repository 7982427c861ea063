/** A small Prometheus registry: samples read at scrape time, and latency histograms. */
import { LATENCY_BUCKETS_MS, type LatencyHistogram } from "./latency.ts";

type Labels = Record<string, string>;
type Sample = [Labels, number, string?];

interface Family {
  help: string;
  type: "counter" | "gauge" | "histogram";
  read(): Sample[] | Promise<Sample[]>;
}

/** Metric families rendered as Prometheus text exposition format 0.0.4. */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();

  /** A gauge or counter whose samples are read when scraped. */
  collect(
    name: string,
    type: "counter" | "gauge",
    help: string,
    read: () => Array<[Labels, number]> | Promise<Array<[Labels, number]>>,
  ): void {
    this.#families.set(name, { help, type, read });
  }

  /** A histogram in seconds from millisecond {@linkcode LatencyHistogram}s, one per label set. */
  histogram(name: string, help: string, read: () => Array<[Labels, LatencyHistogram]>): void {
    this.#families.set(name, {
      help,
      type: "histogram",
      read: () =>
        read().flatMap(([labels, histogram]) => {
          const snapshot = histogram.snapshot();
          return [
            ...LATENCY_BUCKETS_MS.map((bound, i): Sample => [
              { ...labels, le: String(bound / 1000) },
              snapshot.buckets[i]!,
              "_bucket",
            ]),
            [{ ...labels, le: "+Inf" }, snapshot.count, "_bucket"] as Sample,
            [labels, snapshot.sumMs / 1000, "_sum"] as Sample,
            [labels, snapshot.count, "_count"] as Sample,
          ];
        }),
    });
  }

  /** The exposition text. */
  async render(): Promise<string> {
    const families = [...this.#families];
    const samples = await Promise.all(families.map(([, family]) => family.read()));
    const lines: string[] = [];
    families.forEach(([name, family], i) => {
      lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`);
      for (const [labels, value, suffix] of samples[i]!) {
        lines.push(`${name}${suffix ?? ""}${formatLabels(labels)} ${formatValue(value)}`);
      }
    });
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
