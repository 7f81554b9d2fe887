/**
 * Counters, gauges and histograms, rendered in the Prometheus text exposition format (version
 * 0.0.4): what `/metrics` serves. Every metric has a fixed set of label names; each metric
 * holds at most {@linkcode MAX_SERIES} label combinations, and values past that are counted
 * under the label value `"other"`, so an outsider cannot grow memory by inventing paths or
 * methods.
 *
 * @module
 */

/** Most label combinations one metric keeps before folding new ones into `"other"`. */
export const MAX_SERIES = 1000;

/** Default histogram buckets for latencies, in seconds. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Labels = Readonly<Record<string, string>>;

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function formatNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

/** The key a metric's `series` map holds the series of `labels` under. */
function seriesKey(labelNames: readonly string[], labels: Labels): string {
  let key = "";
  for (const name of labelNames) key += (labels[name] ?? "") + "\u0000";
  return key;
}

/** What the metrics of a registry have in common. */
abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  protected readonly series = new Map<string, { labels: string; value: unknown }>();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!NAME.test(name)) throw new TypeError(`metric name "${name}" is not a Prometheus name`);
    for (const label of labelNames) {
      if (!LABEL.test(label) || label.startsWith("__") || label === "le") {
        throw new TypeError(`label name "${label}" of ${name} is not allowed`);
      }
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  abstract get type(): string;

  /**
   * The series by label value, one Map level per label name: a lookup by the values themselves
   * (strings that mostly hash once), with no key string joined on every observation.
   */
  readonly #index = new Map<string, unknown>();

  /** The series for `labels`, made with `initial` the first time. */
  protected entry<T>(labels: Labels, initial: () => T): { labels: string; value: T } {
    const names = this.labelNames;
    const last = names.length - 1;
    let level = this.#index;
    for (let i = 0; i < last; i++) {
      const next = level.get(labels[names[i]!] ?? "") as Map<string, unknown> | undefined;
      if (next === undefined) return this.#add(labels, initial);
      level = next;
    }
    const found = level.get(last < 0 ? "" : labels[names[last]!] ?? "");
    return (found ?? this.#add(labels, initial)) as { labels: string; value: T };
  }

  /** Adds the series of `labels`, or finds the series "other" once there are too many. */
  #add<T>(labels: Labels, initial: () => T): { labels: string; value: T } {
    let values = labels;
    let key = seriesKey(this.labelNames, labels);
    let found = this.series.get(key);
    if (!found && this.series.size >= MAX_SERIES) {
      values = Object.fromEntries(this.labelNames.map((name) => [name, "other"]));
      key = seriesKey(this.labelNames, values);
      found = this.series.get(key);
    }
    if (!found) {
      const text = this.labelNames.map((name) => `${name}="${escapeLabel(values[name] ?? "")}"`)
        .join(",");
      found = { labels: text, value: initial() };
      this.series.set(key, found);
    }
    if (values === labels) {
      // Indexed by its own values (a value folded into "other" is looked up again each time).
      let level = this.#index;
      const names = this.labelNames;
      for (let i = 0; i < names.length - 1; i++) {
        const value = labels[names[i]!] ?? "";
        let next = level.get(value) as Map<string, unknown> | undefined;
        if (next === undefined) level.set(value, next = new Map());
        level = next;
      }
      level.set(names.length === 0 ? "" : labels[names[names.length - 1]!] ?? "", found);
    }
    return found as { labels: string; value: T };
  }

  /** The metric's lines. */
  abstract render(): string[];

  protected header(): string[] {
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
  }
}

function sample(name: string, labels: string, value: number): string {
  return labels === ""
    ? `${name} ${formatNumber(value)}`
    : `${name}{${labels}} ${formatNumber(value)}`;
}

/** A value that only goes up. */
export class Counter extends Metric {
  get type(): string {
    return "counter";
  }

  /** Adds `by` (default 1, never negative) to the series of `labels`. */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`a counter only goes up, got ${by}`);
    const entry = this.entry(labels, () => ({ n: 0 }));
    entry.value.n += by;
  }

  /** The current value of the series of `labels` (0 if never counted). */
  get(labels: Labels = {}): number {
    return (this.series.get(seriesKey(this.labelNames, labels))?.value as { n: number } | undefined)
      ?.n ?? 0;
  }

  render(): string[] {
    return [
      ...this.header(),
      ...[...this.series.values()].map((s) =>
        sample(this.name, s.labels, (s.value as { n: number }).n)
      ),
    ];
  }
}

/**
 * A value read when rendered: a gauge (e.g. connections open now), or a counter kept elsewhere
 * (e.g. bytes forwarded, counted by the relay on its hot path and only read here).
 */
export class Gauge extends Metric {
  readonly #read: () => number | Iterable<[Labels, number]>;
  readonly #kind: "gauge" | "counter";

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    read: () => number | Iterable<[Labels, number]>,
    kind: "gauge" | "counter" = "gauge",
  ) {
    super(name, help, labelNames);
    this.#read = read;
    this.#kind = kind;
  }

  get type(): string {
    return this.#kind;
  }

  render(): string[] {
    const value = this.#read();
    const lines = this.header();
    if (typeof value === "number") return [...lines, sample(this.name, "", value)];
    for (const [labels, n] of value) {
      const text = this.labelNames.map((name) => `${name}="${escapeLabel(labels[name] ?? "")}"`)
        .join(",");
      lines.push(sample(this.name, text, n));
    }
    return lines;
  }
}

/** Observations counted into buckets, with their count and sum. */
export class Histogram extends Metric {
  readonly buckets: readonly number[];

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[] = LATENCY_BUCKETS,
  ) {
    super(name, help, labelNames);
    if (buckets.some((b, i) => i > 0 && b <= buckets[i - 1]!)) {
      throw new RangeError(`buckets of ${name} must increase`);
    }
    this.buckets = buckets;
  }

  get type(): string {
    return "histogram";
  }

  /** Records one observation of `value` in the series of `labels`. */
  observe(labels: Labels, value: number): void {
    const entry = this.entry(labels, () => ({
      counts: new Array<number>(this.buckets.length).fill(0),
      count: 0,
      sum: 0,
    }));
    const h = entry.value;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) h.counts[i]!++;
    h.count++;
    h.sum += value;
  }

  render(): string[] {
    const lines = this.header();
    for (const s of this.series.values()) {
      const h = s.value as { counts: number[]; count: number; sum: number };
      const sep = s.labels === "" ? "" : ",";
      this.buckets.forEach((bucket, i) => {
        lines.push(`${this.name}_bucket{${s.labels}${sep}le="${bucket}"} ${h.counts[i]}`);
      });
      lines.push(`${this.name}_bucket{${s.labels}${sep}le="+Inf"} ${h.count}`);
      lines.push(sample(`${this.name}_sum`, s.labels, h.sum));
      lines.push(sample(`${this.name}_count`, s.labels, h.count));
    }
    return lines;
  }
}

/**
 * A set of metrics and its `/metrics` page.
 *
 * @example
 * ```ts
 * const metrics = new MetricsRegistry();
 * const requests = metrics.counter("stratos_http_requests_total", "HTTP requests", ["status"]);
 * requests.inc({ status: "200" });
 * metrics.render(); // "# HELP stratos_http_requests_total HTTP requests\n..."
 * ```
 */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();

  /** A new counter. @throws TypeError for a bad or duplicate name */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }

  /** A new gauge, read by `read` at each render. */
  gauge(
    name: string,
    help: string,
    read: () => number | Iterable<[Labels, number]>,
    labelNames: readonly string[] = [],
  ): Gauge {
    return this.#add(new Gauge(name, help, labelNames, read));
  }

  /** A counter kept elsewhere and read by `read` at each render (it must never go down). */
  counterFrom(
    name: string,
    help: string,
    read: () => number | Iterable<[Labels, number]>,
    labelNames: readonly string[] = [],
  ): Gauge {
    return this.#add(new Gauge(name, help, labelNames, read, "counter"));
  }

  /** A new histogram. */
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets?: readonly number[],
  ): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** Every metric in the text exposition format, ending with a newline. */
  render(): string {
    return [...this.#metrics.values()].flatMap((m) => m.render()).join("\n") + "\n";
  }

  /** `render()` as an HTTP response with Prometheus's content type. */
  response(): Response {
    return new Response(this.render(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  }

  #add<T extends Metric>(metric: T): T {
    if (this.#metrics.has(metric.name)) {
      throw new TypeError(`metric "${metric.name}" is already registered`);
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }
}
