//! The worker of ApiTap Cluster.
//!
//! - [`agent`]: the `Agent` actor (register, heartbeat, leases, reports, drain).
//! - [`shard_runner`]: one `ShardRunner` actor per lease.
//! - [`shard_loop`]: claim → fetch → transform → commit, page by page (DESIGN §6).
//! - [`fetch`]: HTTP client, pagination, auth, retries.
//! - [`transform`]: JSON → Arrow, DataFusion SQL.
//! - [`sink`]: one module per sink behind the `Sink` trait, with fencing.
//! - [`config`]: command-line flags.

pub mod agent;
pub mod config;
pub mod fetch;
pub mod shard_loop;
pub mod shard_runner;
pub mod sink;
pub mod transform;
