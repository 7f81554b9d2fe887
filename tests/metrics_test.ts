import assert from "node:assert/strict";
import { MAX_SERIES, MetricsRegistry, opsResponse } from "../src/metrics/mod.ts";

Deno.test("metrics render in Prometheus text format, labels escaped, buckets cumulative", () => {
  const metrics = new MetricsRegistry();
  const requests = metrics.counter("stratos_test_total", "Requests\nby status.", ["status", "p"]);
  requests.inc({ status: "200", p: 'a"b\\c\nd' });
  requests.inc({ status: "200", p: 'a"b\\c\nd' }, 2);
  const latency = metrics.histogram("stratos_test_seconds", "Latency.", ["route"], [0.1, 1]);
  latency.observe({ route: "/x" }, 0.05);
  latency.observe({ route: "/x" }, 0.5);
  latency.observe({ route: "/x" }, 5);
  metrics.gauge("stratos_test_up", "Up.", () => 1);
  metrics.counterFrom("stratos_test_bytes_total", "Bytes.", () => 42);
  assert.equal(
    metrics.render(),
    [
      "# HELP stratos_test_total Requests\\nby status.",
      "# TYPE stratos_test_total counter",
      'stratos_test_total{status="200",p="a\\"b\\\\c\\nd"} 3',
      "# HELP stratos_test_seconds Latency.",
      "# TYPE stratos_test_seconds histogram",
      'stratos_test_seconds_bucket{route="/x",le="0.1"} 1',
      'stratos_test_seconds_bucket{route="/x",le="1"} 2',
      'stratos_test_seconds_bucket{route="/x",le="+Inf"} 3',
      'stratos_test_seconds_sum{route="/x"} 5.55',
      'stratos_test_seconds_count{route="/x"} 3',
      "# HELP stratos_test_up Up.",
      "# TYPE stratos_test_up gauge",
      "stratos_test_up 1",
      "# HELP stratos_test_bytes_total Bytes.",
      "# TYPE stratos_test_bytes_total counter",
      "stratos_test_bytes_total 42",
      "",
    ].join("\n"),
  );
  assert.throws(() => requests.inc({ status: "200" }, -1), RangeError);
  assert.throws(() => metrics.counter("stratos_test_total", "again"), TypeError);
  assert.throws(() => metrics.counter("bad-name", "x"), TypeError);
  assert.throws(() => metrics.counter("ok_name", "x", ["le"]), TypeError);
});

Deno.test("a metric keeps at most MAX_SERIES label sets; the rest count as other", () => {
  const metrics = new MetricsRegistry();
  const paths = metrics.counter("stratos_paths_total", "Paths.", ["path"]);
  for (let i = 0; i < MAX_SERIES + 500; i++) paths.inc({ path: `/p${i}` });
  const lines = metrics.render().split("\n").filter((l) => l.startsWith("stratos_paths_total"));
  assert.equal(lines.length, MAX_SERIES + 1);
  assert.equal(paths.get({ path: "other" }), 500);
});

Deno.test("each label set has its own series, however its values share prefixes", () => {
  const metrics = new MetricsRegistry();
  const requests = metrics.counter("stratos_sets_total", "Sets.", ["route", "method", "status"]);
  const sets: Record<string, string>[] = [
    { route: "/a", method: "GET", status: "200" },
    { route: "/a", method: "GET", status: "500" },
    { route: "/a", method: "POST", status: "200" },
    { route: "/b", method: "GET", status: "200" },
    { route: "/a\u0000GET", method: "", status: "200" },
    { route: "/a", method: "GET" }, // a missing label counts as ""
  ];
  for (let round = 1; round <= 3; round++) {
    sets.forEach((labels, i) => requests.inc(labels, i + 1));
  }
  sets.forEach((labels, i) => assert.equal(requests.get(labels), 3 * (i + 1)));
  assert.equal(requests.get({ route: "/a", method: "GET", status: "" }), 18);
  const none = metrics.counter("stratos_none_total", "No labels.");
  none.inc();
  none.inc({}, 2);
  assert.equal(none.get(), 3);
  // Past MAX_SERIES, new label sets of a multi-label metric fold into one "other" series.
  for (let i = 0; i < MAX_SERIES; i++) {
    requests.inc({ route: `/r${i}`, method: "GET", status: "200" });
  }
  const other = { route: "other", method: "other", status: "other" };
  assert.equal(requests.get(other), sets.length);
  assert.equal(requests.get(sets[1]!), 6);
  requests.inc(sets[1]!);
  assert.equal(requests.get(sets[1]!), 7);
});

Deno.test("/health is live, /ready says why not, /metrics is text, others are not ours", async () => {
  const metrics = new MetricsRegistry();
  let reason: string | undefined = "no sat is attached";
  const options = { metrics, notReady: () => reason };
  assert.equal(opsResponse("GET", "/hello", options), undefined);
  assert.equal(opsResponse("GET", "/health", options)!.status, 200);
  const notReady = opsResponse("GET", "/ready", options)!;
  assert.equal(notReady.status, 503);
  assert.equal(await notReady.text(), "not ready: no sat is attached\n");
  reason = undefined;
  assert.equal(opsResponse("GET", "/ready", options)!.status, 200);
  const page = opsResponse("GET", "/metrics", options)!;
  assert.match(page.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const post = opsResponse("POST", "/metrics", options)!;
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("allow"), "GET, HEAD");
});
