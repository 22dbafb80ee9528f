//! The coordinator of ApiTap Cluster: a Raft node (openraft + RocksDB) that stores
//! pipelines, runs, shards and leases, and hands work to workers over gRPC.
//!
//! - [`raft`]: type config, RocksDB log store and state machine, network over tonic.
//! - [`state`]: the replicated data model and its commands, applied deterministically.
//! - [`scheduler`]: leader-only loop: schedules → runs, pending shards → lease grants,
//!   missed heartbeats → lease expiry. Decisions are pure functions in `placement`.
//! - [`ratelimit`]: leader-only rate budgets (fair shares with a TTL).
//! - [`api`]: the tonic services (control, worker, raft) and the admin HTTP server.
//! - [`http`]: the JSON API (`/api`), its OpenAPI document and the web console
//!   (`/console`), served by the admin server over the views of `api`.
//! - [`metrics`]: Prometheus metrics, served by the admin server in `api::admin`.
//! - [`spans`]: the coordinator's tracing spans and the trace context kept in runs and shards.
//! - [`auth`]: the trust boundary: callers, tokens and the authorization table, in one
//!   tower layer in front of every service.
//! - [`history`]: elections observed and rate-limit use sampled, for the console.
//! - [`limits`]: the coordinator's own bounds (Raft messages, snapshots, server timeouts).
//! - [`secrets`]: secret values sealed at rest under the envelope key.
//! - [`liveness`]: the leader's soft state: worker heartbeats and lease deadlines.
//! - [`node`]: one node as its parts see it, with the Raft client calls
//!   (`raft::client`) they share.
//! - [`server`]: starts a node from [`config::Config`] and wires its parts together.

// External input (specs, RPCs, upstream responses) must never panic the process: no
// `unwrap`, `expect` or unchecked indexing outside tests; each exception says why it holds.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod history;
pub mod http;
pub mod limits;
pub mod liveness;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod ratelimit;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod spans;
pub mod state;
