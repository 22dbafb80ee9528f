//! Metrics pushed to an OTLP/gRPC collector: every interval the node's [`Snapshot`] — the same
//! families `/metrics` serves — is converted to an `ExportMetricsServiceRequest` and sent.
//!
//! Counters become cumulative monotonic sums, gauges become gauges, histograms become
//! cumulative explicit-bucket histograms; names stay the Prometheus names (`_total`,
//! `_seconds`), so a dashboard reads the same series whichever path brought them. The
//! conversion is a pure function ([`export_request`]); [`run`] is the push loop.
//!
//! Configuration follows the OpenTelemetry variables: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
//! (else `OTEL_EXPORTER_OTLP_ENDPOINT`), `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000) and `OTEL_METRIC_EXPORT_TIMEOUT` (ms,
//! default 30000).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::watch;

use crate::metrics::{Labels, Points, Snapshot};

/// Where and how often metrics are pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    pub endpoint: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
}

impl ExportConfig {
    /// The configuration from the OpenTelemetry variables; `None` when no endpoint is set,
    /// an error naming the variable when one is malformed.
    pub fn from_env() -> Option<Result<Self, String>> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let endpoint = var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
        let millis = |k: &str, default: u64| -> Result<Duration, String> {
            match var(k) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                    _ => Err(format!(
                        "{k}={v:?} is not a positive number of milliseconds"
                    )),
                },
            }
        };
        Some((|| {
            Ok(ExportConfig {
                endpoint: endpoint.trim().to_string(),
                interval: millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000)?,
                timeout: millis("OTEL_METRIC_EXPORT_TIMEOUT", 30_000)?,
                headers: parse_headers(&var("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default())?,
            })
        })())
    }
}

/// `k1=v1,k2=v2`, values percent-decoded (as the span exporter reads the same variable).
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_ascii_lowercase(), percent_decode(v.trim())))
            }
            _ => Err(format!(
                "OTEL_EXPORTER_OTLP_HEADERS: {pair:?} is not key=value"
            )),
        })
        .collect()
}

/// `%XX` sequences decoded as UTF-8 bytes; anything malformed is kept as written.
#[allow(
    clippy::indexing_slicing,
    reason = "i < bytes.len() is the loop condition"
)]
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// The OTLP request for `snapshot`, read at `now_ns`, cumulative since `start_ns`.
pub fn export_request(
    snapshot: &Snapshot,
    resource: &[(String, String)],
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let number = |labels: &Labels, value: number_data_point::Value| NumberDataPoint {
        attributes: attributes(labels),
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        value: Some(value),
        ..Default::default()
    };
    let metrics = snapshot
        .families
        .iter()
        .map(|f| {
            let data = match &f.points {
                Points::Counter(samples) => metric::Data::Sum(Sum {
                    data_points: samples
                        .iter()
                        .map(|(l, v)| number(l, number_data_point::Value::AsInt(*v as i64)))
                        .collect(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
                Points::Gauge(samples) => metric::Data::Gauge(Gauge {
                    data_points: samples
                        .iter()
                        .map(|(l, v)| number(l, number_data_point::Value::AsDouble(*v)))
                        .collect(),
                }),
                Points::Histogram {
                    bounds,
                    buckets,
                    sum,
                } => metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        start_time_unix_nano: start_ns,
                        time_unix_nano: now_ns,
                        count: buckets.iter().sum(),
                        sum: Some(*sum),
                        bucket_counts: buckets.clone(),
                        explicit_bounds: bounds.to_vec(),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            };
            Metric {
                name: f.name.clone(),
                description: f.help.clone(),
                unit: unit_of(&f.name).to_string(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| key_value(k, v)).collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "apitap".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The UCUM unit implied by a Prometheus name's suffix.
fn unit_of(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        "s"
    } else if base.ends_with("_bytes") {
        "By"
    } else {
        ""
    }
}

fn attributes(labels: &Labels) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| key_value(k, v)).collect()
}

fn key_value(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

/// Pushes `source()` every `config.interval` until `stop` turns true (or its sender is
/// dropped), then pushes once more, within `final_timeout`, so that the last counts before a
/// shutdown reach the collector; a push under way when `stop` comes is abandoned for that
/// last one. An empty snapshot (the node is gone) is not sent. A failed push is logged (once
/// per failure streak) and retried at the next interval: metrics are cumulative, so nothing
/// is lost but resolution.
pub async fn run(
    config: ExportConfig,
    resource: Vec<(String, String)>,
    source: Arc<dyn Fn() -> Snapshot + Send + Sync>,
    final_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let channel = match tonic::transport::Endpoint::from_shared(config.endpoint.clone()) {
        Ok(endpoint) => endpoint.connect_timeout(config.timeout).connect_lazy(),
        Err(e) => {
            tracing::warn!(endpoint = %config.endpoint, error = %e, "otlp metrics disabled: bad endpoint");
            return;
        }
    };
    let mut client = MetricsServiceClient::new(channel);
    let start_ns = crate::time::now_ms() * 1_000_000;
    let mut failing = false;
    let mut interval = tokio::time::interval(config.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut last = false;
    loop {
        if !last {
            last = tokio::select! {
                _ = interval.tick() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
        }
        let snapshot = source();
        if snapshot.families.is_empty() {
            return;
        }
        let now_ns = crate::time::now_ms() * 1_000_000;
        let timeout = if last {
            config.timeout.min(final_timeout)
        } else {
            config.timeout
        };
        let mut request =
            tonic::Request::new(export_request(&snapshot, &resource, start_ns, now_ns));
        request.set_timeout(timeout);
        for (k, v) in &config.headers {
            if let (Ok(k), Ok(v)) = (
                k.parse::<tonic::metadata::MetadataKey<_>>(),
                v.parse::<tonic::metadata::MetadataValue<_>>(),
            ) {
                request.metadata_mut().insert(k, v);
            }
        }
        let push = tokio::time::timeout(timeout, client.export(request));
        let outcome = if last {
            push.await
        } else {
            tokio::select! {
                outcome = push => outcome,
                _ = stop.wait_for(|s| *s) => {
                    last = true;
                    continue;
                }
            }
        };
        match outcome {
            Ok(Ok(_)) => {
                if failing {
                    tracing::info!(endpoint = %config.endpoint, "otlp metrics export recovered");
                }
                failing = false;
            }
            Ok(Err(status)) if !failing => {
                failing = true;
                tracing::warn!(endpoint = %config.endpoint, error = %status.message(), "otlp metrics export failed; retrying every interval");
            }
            Err(_) if !failing => {
                failing = true;
                tracing::warn!(endpoint = %config.endpoint, timeout = ?config.timeout, "otlp metrics export timed out; retrying every interval");
            }
            _ => {}
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CounterVec, Histogram};

    #[test]
    fn families_keep_names_values_and_kinds() {
        let requests = CounterVec::new(&["host", "status"], 8);
        requests.add(&["api", "2xx"], 7);
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(3.0);
        let mut s = Snapshot::new();
        s.counter_vec("apitap_http_requests_total", "Requests.", &requests)
            .gauge("apitap_leases_held", "Held.", 3.0)
            .histogram("apitap_commit_duration_seconds", "Commits.", &h);
        let req = export_request(&s, &[("service.name".into(), "w".into())], 10, 20);
        let rm = &req.resource_metrics[0];
        assert_eq!(
            rm.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        let m = &rm.scope_metrics[0].metrics;
        assert_eq!(m.len(), 3);

        assert_eq!(m[0].name, "apitap_http_requests_total");
        let Some(metric::Data::Sum(sum)) = &m[0].data else {
            panic!("counter is not a sum: {:?}", m[0].data)
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let point = &sum.data_points[0];
        assert_eq!(point.value, Some(number_data_point::Value::AsInt(7)));
        assert_eq!((point.start_time_unix_nano, point.time_unix_nano), (10, 20));
        let labels: Vec<_> = point.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(labels, ["host", "status"]);

        let Some(metric::Data::Gauge(g)) = &m[1].data else {
            panic!("gauge: {:?}", m[1].data)
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(3.0))
        );

        assert_eq!(m[2].unit, "s");
        let Some(metric::Data::Histogram(hist)) = &m[2].data else {
            panic!("histogram: {:?}", m[2].data)
        };
        let p = &hist.data_points[0];
        assert_eq!(p.bucket_counts, [1, 0, 1]);
        assert_eq!(p.explicit_bounds, [0.1, 1.0]);
        assert_eq!((p.count, p.sum), (2, Some(3.05)));
    }

    #[test]
    fn headers_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_headers("Authorization=Basic%20YWI%3D, tenant=a%2").unwrap(),
            [
                ("authorization".to_string(), "Basic YWI=".to_string()),
                ("tenant".to_string(), "a%2".to_string())
            ]
        );
        assert_eq!(parse_headers("").unwrap(), []);
        let e = parse_headers("novalue").unwrap_err();
        assert!(e.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{e}");
    }

    #[test]
    fn units_follow_the_suffix() {
        assert_eq!(unit_of("apitap_worker_fetched_bytes_total"), "By");
        assert_eq!(unit_of("apitap_lease_grant_duration_seconds"), "s");
        assert_eq!(unit_of("apitap_leases_granted_total"), "");
    }
}
