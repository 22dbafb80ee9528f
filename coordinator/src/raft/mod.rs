//! The Raft layer: openraft type configuration, RocksDB storage, the tonic network, and
//! the client calls (`client`) the rest of the coordinator proposes and reads through.

pub mod client;
pub mod election;
pub mod handoff;
// openraft's storage traits fix `StorageError` as the error type, large as it is.
#[allow(clippy::result_large_err)]
pub mod log_store;
pub mod network;
#[allow(clippy::result_large_err)]
pub mod state_machine;
pub mod store;

use std::io::Cursor;

use crate::state::command::{Command, CommandResult};

openraft::declare_raft_types!(
    /// openraft types of the coordinator.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type SnapshotData = Cursor<Vec<u8>>;
