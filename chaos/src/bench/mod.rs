//! Benchmarks that print figures as JSON lines (`apitap-chaos bench`), not tests:
//!
//! - [`load`]: end-to-end records/s from submit to a succeeded run into PostgreSQL.
//! - [`raft`]: leader failover and committed submits/s.
//! - [`lease`]: shard reassignment after a worker kill, and lease grants/s with simulated
//!   workers.
//! - [`ratelimit`]: overshoot and utilisation of a global rate limit.
//! - [`console`]: latency of the coordinator's JSON API and web console with a large state.
//!
//! `control` holds what they share: the control stub, submitting, reading runs, rounding.

pub mod console;
mod control;
pub mod lease;
pub mod load;
pub mod raft;
pub mod ratelimit;

pub use load::{load, LoadBench};
