//! Logging and tracing set-up shared by every binary: level from `RUST_LOG`, pretty or JSON
//! lines on stderr so that stdout stays free for machine-readable output, and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans exported over OTLP/gRPC and, once the binary
//! hands its metrics to [`TelemetryGuard::export_metrics`], metrics too
//! ([`crate::otlp_metrics`]).
//!
//! The exporter honours the usual OpenTelemetry variables (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`); the endpoint is plain `http://` (the
//! exporter is built without TLS). Only spans of ApiTap's own crates (targets `apitap*`) are
//! exported, so the exporter's own gRPC client never traces itself.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::metrics::Snapshot;
use crate::otlp_metrics;

/// The variable that switches OTLP export on.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How long [`TelemetryGuard::shutdown`] waits for the last spans (and, separately, the last
/// metrics) to be exported, so that an unreachable collector cannot hold up a node's exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" | "text" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}; use pretty or json")),
        }
    }
}

/// Keeps the OTLP exporter alive; flushes and stops it on [`shutdown`](Self::shutdown) or
/// drop. Hold it until the end of `main`, and shut it down explicitly before
/// `std::process::exit`, which skips destructors.
#[must_use = "dropping the guard stops the OTLP export at once"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    /// The tonic exporter needs a tokio reactor, and the SDK's batch processor exports from a
    /// plain thread: this small runtime, entered while the exporter is built, drives its
    /// connection whatever runtime (or none) the binary has.
    runtime: Option<tokio::runtime::Runtime>,
    /// The `service.name` and other resource attributes, for metrics.
    resource: Vec<(String, String)>,
}

/// A running metrics push; [`finish`](Self::finish) pushes the last values and stops it.
#[must_use = "dropping the handle stops the metrics export"]
#[derive(Debug)]
pub struct MetricsExport {
    stop: tokio::sync::watch::Sender<bool>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl MetricsExport {
    /// Pushes the metrics one last time (waiting at most a few seconds) and stops. Call it
    /// while what the source reads is still alive.
    pub async fn finish(self) {
        let started = std::time::Instant::now();
        let _ = self.stop.send(true);
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.done).await {
            Ok(_) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "last metrics exported"
            ),
            Err(_) => {
                tracing::warn!(timeout = ?SHUTDOWN_TIMEOUT, "could not export the last metrics in time")
            }
        }
    }
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Pushes `source()` over OTLP every `OTEL_METRIC_EXPORT_INTERVAL` while exporting
    /// (`None` otherwise). Call once, with a closure that reads the node's metrics.
    pub fn export_metrics(
        &self,
        source: impl Fn() -> Snapshot + Send + Sync + 'static,
    ) -> Option<MetricsExport> {
        let runtime = self.runtime.as_ref()?;
        let config = match otlp_metrics::ExportConfig::from_env()? {
            Ok(config) => config,
            Err(error) => {
                tracing::warn!(%error, "otlp metrics export disabled");
                return None;
            }
        };
        tracing::debug!(endpoint = %config.endpoint, interval = ?config.interval, "exporting metrics over otlp");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (done, done_rx) = tokio::sync::oneshot::channel();
        let resource = self.resource.clone();
        runtime.spawn(async move {
            // The last push must fit in `finish`'s wait.
            let last_push = SHUTDOWN_TIMEOUT.mul_f64(0.8);
            otlp_metrics::run(config, resource, Arc::new(source), last_push, stopped).await;
            let _ = done.send(());
        });
        Some(MetricsExport {
            stop,
            done: done_rx,
        })
    }

    /// Exports the spans still buffered (waiting at most a few seconds) and stops the
    /// exporters. Safe to call more than once, and from async code.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                eprintln!("otlp: could not export the last spans: {e}");
            }
        }
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so it is allowed inside an async context.
            rt.shutdown_background();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the global subscriber; `default_level` applies when `RUST_LOG` is unset. Adds an
/// OTLP span exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (a failure to set it up is
/// logged, and logging goes on without it); `instance` becomes the `service.instance.id`
/// unless `OTEL_RESOURCE_ATTRIBUTES` sets one.
pub fn init(format: LogFormat, default_level: &str, instance: &str) -> TelemetryGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Pretty => fmt.with_target(false).boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let (guard, otel, otel_error) = match std::env::var(OTLP_ENDPOINT_ENV) {
        Ok(endpoint) if !endpoint.trim().is_empty() => match otlp_provider(instance) {
            Ok((provider, runtime, resource)) => {
                let tracer = provider.tracer("apitap");
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(filter_fn(|meta| meta.target().starts_with("apitap")));
                let guard = TelemetryGuard {
                    provider: Some(provider),
                    runtime: Some(runtime),
                    resource,
                };
                (guard, Some(layer), None)
            }
            Err(e) => (TelemetryGuard::default(), None, Some(e)),
        },
        _ => (TelemetryGuard::default(), None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    match otel_error {
        Some(error) => tracing::warn!(%error, "otlp export disabled: cannot set up the exporter"),
        None if guard.exporting() => tracing::debug!("exporting spans over otlp"),
        None => {}
    }
    guard
}

/// The resource attributes as text pairs.
type Attributes = Vec<(String, String)>;

/// The tracer provider with a batch OTLP/gRPC exporter, the runtime its exporter uses, and
/// the resource's attributes (for metrics).
fn otlp_provider(
    instance: &str,
) -> Result<(SdkTracerProvider, tokio::runtime::Runtime, Attributes), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the exporter's runtime: {e}"))?;
    let exporter = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| e.to_string())?
    };
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name());
    }
    // Tells the cumulative series of two workers apart at the collector.
    let from_env = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    if !from_env.contains("service.instance.id=") {
        resource = resource.with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            instance.to_string(),
        ));
    }
    let resource = resource.build();
    let attributes = resource
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    Ok((provider, runtime, attributes))
}

/// The running binary's name (`apitap-worker`, ...), the default `service.name`.
fn service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "apitap".into())
}
