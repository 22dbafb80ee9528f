//! Benchmarks that print figures as JSON lines (`apitap-chaos bench`), not tests:
//!
//! - [`load`]: end-to-end records/s from submit to a succeeded run into PostgreSQL.
//! - [`raft`]: leader failover and committed submits/s.
//! - [`lease`]: shard reassignment after a worker kill, and lease grants/s with simulated
//!   workers.
//! - [`ratelimit`]: overshoot and utilisation of a global rate limit.
//!
//! `control` holds what they share: the control stub, submitting, reading runs, rounding.

mod control;
pub mod lease;
pub mod load;
pub mod raft;
pub mod ratelimit;

pub use load::{load, LoadBench};
