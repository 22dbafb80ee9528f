//! The worker's Prometheus metrics (served on the admin server's `/metrics`) and its
//! readiness, which the same counters decide.
//!
//! One [`Metrics`] per process, created in `main` and handed to the `Agent`, which puts it
//! in every `LeaseWork`. HTTP requests are counted per attempt by [`FetchObserver`], from the
//! fetcher's public hooks only (`Fetcher::on_retry` before each retry, the returned `Page` or
//! error after the last attempt), so the fetch code stays free of metrics.
//!
//! The primitives and the text format are `apitap_common::metrics` (why hand-rolled: see there).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apitap_common::checkpoint::Position;
use apitap_common::metrics::{Counter, CounterVec, Gauge, Histogram, Snapshot};

use crate::fetch::{Breakers, FetchError, Fetcher, Page, RetryEvent};

/// Distinct (host, status class) series kept before further hosts count as "other".
const MAX_HTTP_SERIES: usize = 64;

/// What a worker counts.
#[derive(Debug)]
pub struct Metrics {
    /// 1 once the coordinator accepted this worker's registration (0 again if it forgot it).
    pub registered: Gauge,
    /// 1 from the shutdown signal on; never goes back.
    pub draining: Gauge,
    /// Leases running or waiting for the coordinator to acknowledge their end (published on
    /// each agent tick, so up to one heartbeat interval behind).
    pub leases_held: Gauge,
    pub pages_fetched: Counter,
    /// Conditional requests answered `304 Not Modified`: shards with nothing to load.
    pub not_modified: Counter,
    pub bytes_fetched: Counter,
    /// Requests by `host` (of the pipeline URL) and `status` class (`2xx` … `5xx`, `error`
    /// when no response came).
    pub http_requests: CounterVec,
    /// Time of one request attempt (including its rate-limit wait, if any).
    pub http_request_seconds: Histogram,
    pub http_retries: Counter,
    /// Records in the fetched pages.
    pub records_fetched: Counter,
    /// Rows the transform SQL produced.
    pub records_transformed: Counter,
    /// Rows committed to the sink.
    pub records_loaded: Counter,
    /// Time of a successful batch commit (rows and checkpoint in one transaction).
    pub batch_commit_seconds: Histogram,
    /// Leases the sink refused because a newer lease (higher fence) owns the shard.
    pub fence_rejections: Counter,
    /// Upstream limits that refused a response, by `limit` name (docs/operations.md).
    pub limit_hits: CounterVec,
    /// The process's circuit breakers per upstream host, shared by every fetcher (through
    /// `LeaseWork::metrics`) and read by `/metrics`.
    pub breakers: Arc<Breakers>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            registered: Gauge::default(),
            draining: Gauge::default(),
            leases_held: Gauge::default(),
            pages_fetched: Counter::default(),
            not_modified: Counter::default(),
            bytes_fetched: Counter::default(),
            http_requests: CounterVec::new(&["host", "status"], MAX_HTTP_SERIES),
            http_request_seconds: Histogram::latency(),
            http_retries: Counter::default(),
            records_fetched: Counter::default(),
            records_transformed: Counter::default(),
            records_loaded: Counter::default(),
            batch_commit_seconds: Histogram::latency(),
            fence_rejections: Counter::default(),
            limit_hits: CounterVec::new(&["limit"], MAX_HTTP_SERIES),
            breakers: Arc::default(),
        }
    }

    /// The `Agent`'s view, published on each tick. Draining is sticky: `main` sets it on the
    /// shutdown signal, before the agent hears of it.
    pub fn agent_status(&self, registered: bool, draining: bool, leases_held: usize) {
        self.registered.set(i64::from(registered));
        if draining {
            self.draining.set(1);
        }
        self.leases_held.set(leases_held as i64);
    }

    /// `Err(reason)` while the worker should get no new work: not registered, or draining.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.draining.get() != 0 {
            Err("draining")
        } else if self.registered.get() == 0 {
            Err("not registered with the coordinator")
        } else {
            Ok(())
        }
    }

    /// A committed batch of `rows` that took `took`.
    pub fn observe_commit(&self, took: Duration, rows: u64) {
        self.batch_commit_seconds.observe_duration(took);
        self.records_loaded.add(rows);
    }

    /// Every family, read now.
    pub fn snapshot(&self) -> Snapshot {
        let mut e = Snapshot::new();
        e.gauge(
            "apitap_worker_registered",
            "1 if the coordinator knows this worker.",
            self.registered.get() as f64,
        )
        .gauge(
            "apitap_worker_draining",
            "1 while the worker drains before exit.",
            self.draining.get() as f64,
        )
        .gauge(
            "apitap_worker_leases_held",
            "Shard leases this worker holds.",
            self.leases_held.get() as f64,
        )
        .counter(
            "apitap_worker_pages_fetched_total",
            "Pages fetched from source APIs.",
            self.pages_fetched.get(),
        )
        .counter(
            "apitap_worker_not_modified_total",
            "Conditional requests answered 304 Not Modified (nothing loaded).",
            self.not_modified.get(),
        )
        .counter(
            "apitap_worker_fetched_bytes_total",
            "Bytes of response bodies of fetched pages.",
            self.bytes_fetched.get(),
        )
        .counter_vec(
            "apitap_worker_http_requests_total",
            "HTTP requests to source APIs by host and status class (error: no response).",
            &self.http_requests,
        )
        .histogram(
            "apitap_worker_http_request_duration_seconds",
            "Time of one HTTP request attempt to a source API.",
            &self.http_request_seconds,
        )
        .counter(
            "apitap_worker_http_retries_total",
            "HTTP requests retried after a retriable failure.",
            self.http_retries.get(),
        )
        .counter(
            "apitap_worker_records_fetched_total",
            "Records in fetched pages.",
            self.records_fetched.get(),
        )
        .counter(
            "apitap_worker_records_transformed_total",
            "Rows produced by the transform SQL.",
            self.records_transformed.get(),
        )
        .counter(
            "apitap_worker_records_loaded_total",
            "Rows committed to sinks.",
            self.records_loaded.get(),
        )
        .histogram(
            "apitap_worker_batch_commit_duration_seconds",
            "Time of a batch commit (rows and checkpoint in one transaction).",
            &self.batch_commit_seconds,
        )
        .counter(
            "apitap_worker_fence_rejections_total",
            "Leases refused by the sink because a newer lease owns the shard.",
            self.fence_rejections.get(),
        )
        .counter_vec(
            "apitap_worker_limit_hits_total",
            "Responses refused by an upstream limit, by limit name.",
            &self.limit_hits,
        );
        let states = self.breakers.states();
        e.gauge_by(
            "apitap_worker_circuit_breaker_state",
            "Circuit breaker of an upstream host: 0 closed, 1 open, 2 half-open.",
            "host",
            states
                .iter()
                .take(MAX_HTTP_SERIES)
                .map(|(host, s)| (host.as_str(), s.code() as f64)),
        )
        .counter_vec(
            "apitap_worker_circuit_breaker_rejections_total",
            "Requests held back by an open circuit breaker (the shard waited), by host.",
            &self.breakers.rejected,
        );
        e
    }
}

/// Counts the requests of one shard's fetcher. Fetches of a shard are sequential, which is
/// what makes the per-attempt timing below exact.
pub struct FetchObserver {
    metrics: Arc<Metrics>,
    host: Arc<str>,
    /// When the current attempt started: set before a fetch, and on a retry to the end of
    /// its back-off wait.
    attempt_started: Arc<Mutex<Instant>>,
}

impl FetchObserver {
    /// Hooks `fetcher`'s retries into `metrics`; `position` is any position of the shard (its
    /// URL's host labels the requests).
    pub fn attach(
        metrics: &Arc<Metrics>,
        fetcher: Fetcher,
        position: &Position,
    ) -> (Fetcher, Self) {
        let host: Arc<str> = fetcher
            .url_for(position)
            .ok()
            .and_then(|u| u.host_str().map(Arc::from))
            .unwrap_or_else(|| Arc::from("unknown"));
        let observer = Self {
            metrics: metrics.clone(),
            host: host.clone(),
            attempt_started: Arc::new(Mutex::new(Instant::now())),
        };
        let (m, started) = (metrics.clone(), observer.attempt_started.clone());
        let fetcher = fetcher.on_retry(move |ev: &RetryEvent| {
            let now = Instant::now();
            let mut started = started.lock().unwrap_or_else(|p| p.into_inner());
            m.http_request_seconds
                .observe_duration(now.saturating_duration_since(*started));
            m.http_requests
                .inc(&[&host, ev.status.map_or("error", status_class)]);
            m.http_retries.inc();
            if ev.clamped {
                m.limit_hits.inc(&["max_retry_after"]);
            }
            *started = now + ev.wait;
        });
        (fetcher, observer)
    }

    /// [`Fetcher::fetch`], counted.
    pub async fn fetch(
        &self,
        fetcher: &Fetcher,
        position: &Position,
        pages_done: u64,
        records_done: u64,
    ) -> Result<Page, FetchError> {
        *self.lock_started() = Instant::now();
        let result = fetcher.fetch(position, pages_done, records_done).await;
        let took = Instant::now().saturating_duration_since(*self.lock_started());
        let m = &self.metrics;
        let class = match &result {
            Ok(page) => {
                m.pages_fetched.inc();
                if page.status == 304 {
                    m.not_modified.inc();
                }
                m.bytes_fetched.add(page.bytes);
                m.records_fetched.add(page.records.len() as u64);
                Some(status_class(page.status))
            }
            Err(e) => {
                if let Some(limit) = e.limit() {
                    m.limit_hits.inc(&[limit]);
                }
                error_status_class(e)
            }
        };
        if let Some(class) = class {
            m.http_request_seconds.observe_duration(took);
            m.http_requests.inc(&[&self.host, class]);
        }
        result
    }

    fn lock_started(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.attempt_started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// `2xx` … `5xx` (anything else is `error`).
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}

/// The status class of the last attempt of a failed fetch, or `None` when no request was
/// made (the position could not be turned into one).
fn error_status_class(e: &FetchError) -> Option<&'static str> {
    match e {
        FetchError::Status { status, .. } => Some(status_class(*status)),
        // A response came, but its body was unusable.
        FetchError::Records { .. } | FetchError::Pagination { .. } => Some("2xx"),
        FetchError::Transport { .. }
        | FetchError::InvalidJson { .. }
        | FetchError::BodyTooLarge { .. }
        | FetchError::Redirect { .. }
        | FetchError::Egress { .. } => Some("error"),
        FetchError::CrossOrigin { .. } => Some("3xx"),
        FetchError::Config { .. }
        | FetchError::Token { .. }
        | FetchError::CircuitOpen { .. }
        | FetchError::PositionMismatch { .. }
        | FetchError::AlreadyDone => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_registration_and_drain() {
        let m = Metrics::new();
        assert!(m.readiness().is_err());
        m.agent_status(true, false, 2);
        assert_eq!(m.readiness(), Ok(()));
        m.draining.set(1);
        m.agent_status(true, false, 2);
        assert_eq!(m.readiness(), Err("draining"));
    }

    #[test]
    fn render_has_every_family() {
        let m = Metrics::new();
        m.http_requests.inc(&["api.example.com", "2xx"]);
        m.observe_commit(Duration::from_millis(3), 50);
        let text = m.snapshot().to_text();
        for name in [
            "apitap_worker_pages_fetched_total",
            "apitap_worker_http_requests_total{host=\"api.example.com\",status=\"2xx\"} 1",
            "apitap_worker_records_loaded_total 50",
            "apitap_worker_batch_commit_duration_seconds_count 1",
            "apitap_worker_fence_rejections_total 0",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(0), "error");
    }
}
