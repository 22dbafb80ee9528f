//! Testbed, mock API and drills of ApiTap Cluster.
//!
//! - [`mock_api`]: the deterministic REST API every test, demo and drill fetches from.
//! - [`testbed`]: real coordinator/worker processes, a throwaway PostgreSQL, waiting helpers.
//! - [`bench`]: end-to-end throughput benchmarks (`apitap-chaos bench`).
//! - [`demo`]: the local end-to-end demo behind `apitap-chaos demo`.

pub mod bench;
pub mod bench_lease;
pub mod bench_raft;
pub mod demo;
pub mod mock_api;
pub mod testbed;
