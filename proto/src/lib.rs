//! gRPC contracts of ApiTap Cluster, generated from `proto/*.proto`:
//!
//! - `ControlService`: apitapctl → coordinator (pipelines, runs, cluster membership).
//! - `WorkerService`: workers → coordinator (register, heartbeat, leases, checkpoints).
//! - `RaftService`: coordinator ↔ coordinator (openraft messages, serialized as JSON).
//!
//! A follower that receives a write answers `UNAVAILABLE` with the leader's address in the
//! [`LEADER_HINT`] metadata key; clients retry there. [`tls`] holds the mutual-TLS settings
//! every link uses when the cluster has them.

pub mod auth;
pub mod client;
pub mod identity;
pub mod limits;
pub mod tls;

pub mod v1 {
    tonic::include_proto!("apitap.v1");
}

/// A budget answer as a worker's token bucket takes it (`apitap_common::budget::Bucket`).
impl From<&v1::BudgetGrant> for apitap_common::budget::Grant {
    fn from(g: &v1::BudgetGrant) -> Self {
        Self {
            limited: g.limited,
            rps: g.rps,
            limit_rps: g.limit_rps,
            burst: g.burst,
            ttl: std::time::Duration::from_millis(g.ttl_ms),
            backoff_until_ms: g.backoff_until_ms,
        }
    }
}

/// Response metadata key carrying the current leader's gRPC address.
pub const LEADER_HINT: &str = "x-apitap-leader";
