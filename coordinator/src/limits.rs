//! The coordinator's own limits (the wire's are in `apitap_proto::limits`, the spec's in
//! `apitap_common::limits`). docs/operations.md ("Limits") lists them all.

use std::time::Duration;

/// Largest Raft message (an append batch or a snapshot chunk) a coordinator takes.
pub const MAX_RAFT_MESSAGE_BYTES: usize = 64 << 20;

/// Largest snapshot a coordinator installs: a chunk whose offset would go beyond it is
/// refused before anything is allocated.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// A unary call that has not answered within this is cancelled (streams only for their
/// start).
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// Calls one connection may have in flight at once.
pub const CONCURRENT_CALLS_PER_CONNECTION: usize = 256;

/// Longest `--raft-heartbeat` and `--election-timeout`: beyond this a cluster would wait
/// minutes to notice a dead leader, and the timers' arithmetic stays far from overflow.
pub const MAX_RAFT_TIMING: Duration = Duration::from_secs(60);

/// Longest `--shutdown-timeout`.
pub const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(600);
