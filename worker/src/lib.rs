//! The worker of ApiTap Cluster.
//!
//! - [`agent`]: the `Agent` actor (register, heartbeat, leases, reports, drain).
//! - [`shard_runner`]: one `ShardRunner` actor per lease.
//! - [`rate_budget`]: the `RateBudget` actor: shares of global rate limits, token buckets, back-offs.
//! - [`lease`]: a granted lease with what working on it needs.
//! - [`shard_loop`]: claim → fetch → transform → commit, page by page (DESIGN §6).
//! - [`shard_limits`]: the shard's budget and the watermark's plausibility, checked per page.
//! - [`fetch`]: HTTP client, pagination, auth, retries.
//! - [`transform`]: JSON → Arrow, DataFusion SQL.
//! - [`sink`]: one module per sink behind the `Sink` trait, with fencing.
//! - [`config`]: command-line flags.
//! - [`admin`]: the admin HTTP server (health, readiness, metrics).
//! - `worker_rpc`: calls to the coordinator's `WorkerService` on the Raft leader.
//! - [`metrics`]: Prometheus metrics; [`spans`]: the shard loop's tracing spans.

// External input (specs, RPCs, upstream responses) must never panic the process: no
// `unwrap`, `expect` or unchecked indexing outside tests; each exception says why it holds.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod admin;
pub mod agent;
pub mod batch_memory;
pub mod config;
pub mod fetch;
pub mod lease;
pub mod metrics;
pub mod rate_budget;
pub mod shard_limits;
pub mod shard_loop;
pub mod shard_runner;
pub mod sink;
pub mod spans;
pub mod transform;
pub(crate) mod worker_rpc;
