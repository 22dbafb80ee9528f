//! Shared foundation of ApiTap Cluster. Nothing here does heavy I/O.
//!
//! - [`spec`]: the pipeline YAML → validated types, `${ENV}` secrets, `{{ template }}` variables,
//!   errors that carry file, line and column.
//! - [`limits`]: every limit on a spec (size, aliases, nesting, shards, lengths), in one place.
//! - [`jsonpath`]: the small JSON path subset used to find records, cursors and flags.
//! - [`shard`]: expanding `spec.shards` into the shards of a run (a pure function).
//! - [`checkpoint`]: the resume position of a shard, shared by coordinator and worker.
//! - [`watermark`]: typed incremental watermarks and the values that may not move them.
//! - [`cron`]: cron schedules in UTC (five fields, names, @shortcuts), on the `croner` crate.
//! - [`timestamp`]: RFC 3339 timestamps for time-window shards and watermarks, on `chrono`.
//! - [`retry`]: exponential back-off with jitter.
//! - [`budget`]: how a worker's share of a rate limit becomes its token bucket.
//! - [`error`]: error classification (user / transient / internal).
//! - [`telemetry`]: tracing set-up for every binary (logs, OTLP span export).
//! - [`metrics`]: counters, gauges, histograms, and the Prometheus text format.
//! - [`otlp_metrics`]: the same metrics pushed to an OTLP collector.
//! - [`trace_context`]: W3C `traceparent` carried in runs and leases.
//! - [`shutdown`]: a broadcast-based shutdown signal.
//! - `fuzz` (feature `fuzz`, and in tests): input generators and checks shared by the property
//!   tests and `apitap-chaos fuzz`.

// External input (specs, RPCs, upstream responses) must never panic the process: no
// `unwrap`, `expect` or unchecked indexing outside tests; each exception says why it holds.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod budget;
pub mod checkpoint;
pub mod cron;
pub mod error;
#[cfg(any(test, feature = "fuzz"))]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "property-test generators and checks, built only for tests and `apitap-chaos fuzz`: a panic there is a reported failure"
)]
pub mod fuzz;
pub mod jsonpath;
pub mod limits;
pub mod metrics;
pub mod otlp_metrics;
pub mod retry;
pub mod shard;
pub mod shutdown;
pub mod spec;
pub mod telemetry;
pub mod time;
pub mod timestamp;
pub mod trace_context;
pub mod watermark;

#[cfg(test)]
mod proptests;
