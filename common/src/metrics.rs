//! Metrics for every node: counters, gauges and histograms on atomics, read into a
//! [`Snapshot`] that is served in the Prometheus text exposition format 0.0.4 and exported
//! over OTLP ([`crate::otlp_metrics`]).
//!
//! Hand-rolled rather than `prometheus-client` on purpose: that crate writes the OpenMetrics
//! text format (`# EOF`, counters typed without their `_total` suffix), which a scraper asking
//! for `text/plain; version=0.0.4` reads as untyped series; the few types needed here are a
//! page of code with no dependency. There is no global registry: each node builds its own
//! metrics struct, passes it around in an `Arc`, and renders it at scrape time, adding gauges
//! it computes from its state there and then.
//!
//! Label sets are bounded: a [`CounterVec`] keeps at most `max_series` label sets and counts
//! any further one under [`OVERFLOW_LABEL`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The `Content-Type` of [`TextEncoder`] output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label value that stands for every label set past a [`CounterVec`]'s limit.
pub const OVERFLOW_LABEL: &str = "other";

/// Buckets (seconds) for network and database latencies: 1 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A distribution over fixed upper bounds (`le`), plus `+Inf`.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum as `f64` bits, updated with compare-and-swap.
    sum: AtomicU64,
}

/// Latency buckets ([`LATENCY_BUCKETS`]), what most histograms of the project measure.
impl Default for Histogram {
    fn default() -> Self {
        Self::latency()
    }
}

impl Histogram {
    /// `bounds` must be sorted ascending.
    #[allow(
        clippy::indexing_slicing,
        reason = "windows(2) yields slices of exactly 2"
    )]
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// A histogram with [`LATENCY_BUCKETS`] (also its [`Default`]).
    pub fn latency() -> Self {
        Self::new(LATENCY_BUCKETS)
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "buckets has bounds.len() + 1 entries and i <= bounds.len()"
    )]
    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

/// Counters keyed by the values of a fixed list of labels, at most `max_series` of them.
#[derive(Debug)]
pub struct CounterVec {
    labels: &'static [&'static str],
    max_series: usize,
    series: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterVec {
    pub fn new(labels: &'static [&'static str], max_series: usize) -> Self {
        Self {
            labels,
            max_series: max_series.max(1),
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `n` to the series of `values` (one per label, in order). Past the series limit,
    /// a new label set is counted with every value replaced by [`OVERFLOW_LABEL`].
    pub fn add(&self, values: &[&str], n: u64) {
        debug_assert_eq!(values.len(), self.labels.len());
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = series.get_mut(&key) {
            *v += n;
            return;
        }
        let key = if series.len() + 1 >= self.max_series {
            vec![OVERFLOW_LABEL.to_string(); self.labels.len()]
        } else {
            key
        };
        *series.entry(key).or_insert(0) += n;
    }

    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    /// The count of one label set (0 if never counted).
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.get(&key).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// The labels of one sample, in order.
pub type Labels = Vec<(String, String)>;

/// The samples of one metric family.
#[derive(Debug, Clone, PartialEq)]
pub enum Points {
    Counter(Vec<(Labels, u64)>),
    Gauge(Vec<(Labels, f64)>),
    Histogram {
        /// Upper bounds (`le`), ascending; `+Inf` is implicit.
        bounds: &'static [f64],
        /// Per-bucket (not cumulative) counts, one more than `bounds` (the last is `+Inf`).
        buckets: Vec<u64>,
        sum: f64,
    },
}

/// One metric family: a name, its help text and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub points: Points,
}

/// A point-in-time reading of a node's metrics, built family by family. It is encoded as
/// Prometheus text by [`to_text`](Self::to_text) for `/metrics`, and as an OTLP export
/// request by [`crate::otlp_metrics`], so both outputs carry the same names and values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub families: Vec<Family>,
}

impl Snapshot {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, name: &str, help: &str, points: Points) -> &mut Self {
        self.families.push(Family {
            name: name.to_string(),
            help: help.to_string(),
            points,
        });
        self
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.push(name, help, Points::Counter(vec![(Vec::new(), value)]))
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: impl Into<f64>) -> &mut Self {
        self.push(name, help, Points::Gauge(vec![(Vec::new(), value.into())]))
    }

    pub fn counter_vec(&mut self, name: &str, help: &str, vec: &CounterVec) -> &mut Self {
        let samples = vec
            .snapshot()
            .into_iter()
            .map(|(values, count)| {
                let labels = vec
                    .labels
                    .iter()
                    .map(|l| l.to_string())
                    .zip(values)
                    .collect();
                (labels, count)
            })
            .collect();
        self.push(name, help, Points::Counter(samples))
    }

    /// A gauge with one label, one sample per `(label value, value)`.
    pub fn gauge_by<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> &mut Self {
        let samples = samples
            .into_iter()
            .map(|(value, v)| (vec![(label.to_string(), value.to_string())], v))
            .collect();
        self.push(name, help, Points::Gauge(samples))
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) -> &mut Self {
        let buckets = h
            .buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        self.push(
            name,
            help,
            Points::Histogram {
                bounds: h.bounds,
                buckets,
                sum: h.sum(),
            },
        )
    }

    /// The Prometheus text format 0.0.4.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
            let kind = match f.points {
                Points::Counter(_) => "counter",
                Points::Gauge(_) => "gauge",
                Points::Histogram { .. } => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {help}", f.name);
            let _ = writeln!(out, "# TYPE {} {kind}", f.name);
            match &f.points {
                Points::Counter(samples) => {
                    for (labels, v) in samples {
                        sample(&mut out, &f.name, labels, v);
                    }
                }
                Points::Gauge(samples) => {
                    for (labels, v) in samples {
                        sample(&mut out, &f.name, labels, format_float(*v));
                    }
                }
                Points::Histogram {
                    bounds,
                    buckets,
                    sum,
                } => {
                    let bucket = format!("{}_bucket", f.name);
                    let mut cumulative = 0;
                    for (i, count) in buckets.iter().enumerate() {
                        cumulative += count;
                        let le = bounds
                            .get(i)
                            .map_or_else(|| "+Inf".to_string(), |b| format_float(*b));
                        sample(&mut out, &bucket, &[("le".into(), le)], cumulative);
                    }
                    sample(
                        &mut out,
                        &format!("{}_sum", f.name),
                        &[],
                        format_float(*sum),
                    );
                    // The count is the +Inf bucket, so that the two always agree.
                    sample(&mut out, &format!("{}_count", f.name), &[], cumulative);
                }
            }
        }
        out
    }
}

fn sample(
    out: &mut String,
    name: &str,
    labels: &[(String, String)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(0.5);
        h.observe(7.0);
        let mut e = Snapshot::new();
        e.histogram("x_seconds", "X.", &h);
        let text = e.to_text();
        assert!(text.contains("# TYPE x_seconds histogram\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"1\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_sum 8.05\n"), "{text}");
        assert!(text.contains("x_seconds_count 4\n"), "{text}");
    }

    #[test]
    fn counter_vec_escapes_labels_and_caps_series() {
        let v = CounterVec::new(&["host", "status"], 3);
        v.inc(&["a\"b", "2xx"]);
        v.add(&["a\"b", "2xx"], 2);
        v.inc(&["c", "5xx"]);
        v.inc(&["d", "5xx"]);
        v.inc(&["e", "4xx"]);
        assert_eq!(v.get(&["a\"b", "2xx"]), 3);
        assert_eq!(v.get(&[OVERFLOW_LABEL, OVERFLOW_LABEL]), 2);
        let mut e = Snapshot::new();
        e.counter_vec("req_total", "Requests.", &v);
        let text = e.to_text();
        assert!(
            text.contains("req_total{host=\"a\\\"b\",status=\"2xx\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE req_total counter\n"), "{text}");
    }

    #[test]
    fn plain_families_have_help_and_type() {
        let mut e = Snapshot::new();
        e.counter("a_total", "Line one\nline two.", 5)
            .gauge("b", "B.", 1.5)
            .gauge_by("c", "C.", "state", [("x", 1.0), ("y", 0.0)]);
        let text = e.to_text();
        assert_eq!(
            text,
            "# HELP a_total Line one\\nline two.\n# TYPE a_total counter\na_total 5\n\
             # HELP b B.\n# TYPE b gauge\nb 1.5\n\
             # HELP c C.\n# TYPE c gauge\nc{state=\"x\"} 1\nc{state=\"y\"} 0\n"
        );
    }
}
