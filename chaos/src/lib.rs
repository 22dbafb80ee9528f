//! Testbed, mock API and drills of ApiTap Cluster.
//!
//! - [`mock_api`]: the deterministic REST API every test, demo and drill fetches from.
//! - [`testbed`]: real coordinator/worker processes, a throwaway PostgreSQL, waiting helpers.
//! - [`bench`]: benchmarks that print figures (`apitap-chaos bench`): load, Raft, leases,
//!   rate limits.
//! - [`stats`]: percentiles and summaries the benches and drills report.
//! - [`demo`]: the local end-to-end demo behind `apitap-chaos demo`.
//! - [`drill`]: chaos drills with invariant checks and reports (`apitap-chaos drill`).
//! - [`fuzz`]: property-based fuzzing of the parsers of outside input (`apitap-chaos fuzz`).
//! - [`playground`]: the local cluster of `apitap-chaos up`, fresh or kept.
//! - [`proxy`]: the TCP fault proxy drills put between coordinators (partitions, latency).

pub mod bench;
pub mod cpu_hog;
pub mod demo;
pub mod drill;
pub mod fuzz;
pub mod mock_api;
pub mod playground;
pub mod proxy;
pub mod stats;
pub mod testbed;
