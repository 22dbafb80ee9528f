//! The checkpoint row, `apitap_checkpoints` (DESIGN §6): its key, the stored JSON, and the
//! commit-time fence check.
//!
//! One row per (pipeline, run_id, shard): the fence of the lease that owns the shard, the
//! checkpoint JSON ([`apitap_common::checkpoint::Checkpoint::to_json`]) and its counts
//! copied into columns for people who query the table. The fence only ever rises: the claim
//! upsert raises it only when the stored one is lower, and commits write it unchanged. The
//! statements themselves are each dialect's ([`super::dialect::Statements`]).

use apitap_common::checkpoint::Checkpoint;

use super::error::{to_i64, to_u64};
use super::exec::Param;
use crate::sink::{ShardRef, SinkError};

/// A shard's key as the checkpoint table stores it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    pub pipeline: &'a str,
    pub run_id: i64,
    pub shard: i64,
}

impl<'a> Key<'a> {
    pub fn new(shard: &'a ShardRef) -> Result<Self, SinkError> {
        Ok(Self {
            pipeline: &shard.pipeline,
            run_id: to_i64("run id", shard.run_id)?,
            shard: i64::from(shard.shard),
        })
    }

    /// The key as the first three parameters of a statement.
    pub fn params(&self) -> [Param<'a>; 3] {
        [
            Param::text(self.pipeline),
            Param::Int(self.run_id),
            Param::Int(self.shard),
        ]
    }
}

/// The lease a sink call is made under: the shard's key and the lease's fence, checked
/// once to fit the database's integers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease<'a> {
    pub key: Key<'a>,
    /// The fence as the database stores it.
    pub ours: i64,
    /// The fence as the worker has it, for errors.
    pub fence: u64,
}

impl<'a> Lease<'a> {
    pub fn new(shard: &'a ShardRef, fence: u64) -> Result<Self, SinkError> {
        Ok(Self {
            key: Key::new(shard)?,
            ours: to_i64("fence", fence)?,
            fence,
        })
    }

    /// The commit-time fence check: `stored` is the locked row's fence (`None`: no row).
    pub fn check(&self, stored: Option<i64>) -> Result<(), SinkError> {
        check_fence(stored, self.ours, self.fence)
    }
}

/// The stored checkpoint JSON; ApiTap wrote it, so a parse failure is an internal error.
pub(crate) fn parse_checkpoint(text: &str) -> Result<Checkpoint, SinkError> {
    Checkpoint::from_json(text)
        .map_err(|e| SinkError::Internal(format!("stored checkpoint {text:?} is unreadable: {e}")))
}

/// The commit-time fence check: `stored` is the locked row's fence (`None`: no row).
fn check_fence(stored: Option<i64>, ours: i64, fence: u64) -> Result<(), SinkError> {
    match stored {
        None => Err(SinkError::Internal(
            "commit before claim: the shard has no checkpoint row".into(),
        )),
        // FAULT INJECTION, for chaos drills only: see `fencing_disabled`.
        Some(s) if s != ours && fencing_disabled() => {
            tracing::warn!(
                fence,
                stored_fence = s,
                "FAULT INJECTION: fencing disabled: accepting a commit whose fence differs from the sink's"
            );
            Ok(())
        }
        Some(s) if s != ours => Err(SinkError::Fenced {
            stored: to_u64(s),
            ours: fence,
        }),
        Some(_) => Ok(()),
    }
}

/// FAULT INJECTION, for chaos drills only, compiled only with the `failpoints` feature:
/// `APITAP_FAULT_DISABLE_FENCING=true` turns the commit-time fence check off, so that
/// `apitap-chaos drill` can show that its checker catches what fencing prevents.
#[cfg(not(feature = "failpoints"))]
fn fencing_disabled() -> bool {
    false
}

/// See above: the switch itself.
#[cfg(feature = "failpoints")]
fn fencing_disabled() -> bool {
    static DISABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DISABLED.get_or_init(|| {
        std::env::var("APITAP_FAULT_DISABLE_FENCING").is_ok_and(|v| v == "true" || v == "1")
    })
}
