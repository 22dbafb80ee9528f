//! The checkpoint table, `apitap_checkpoints`, in both SQL dialects (DESIGN §6).
//!
//! One row per (pipeline, run_id, shard): the fence of the lease that owns the shard, the
//! checkpoint JSON ([`apitap_common::checkpoint::Checkpoint::to_json`]) and its counts
//! copied into columns for people who query the table. The fence only ever rises: the claim
//! upsert raises it only when the stored one is lower, and commits write it unchanged.
//!
//! Parameters, in order, for every statement keyed by the shard: pipeline, run_id, shard.

/// PostgreSQL: created in the default schema (the first of `search_path`).
pub(crate) mod pg {
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS apitap_checkpoints (
        pipeline   TEXT        NOT NULL,
        run_id     BIGINT      NOT NULL,
        shard      BIGINT      NOT NULL,
        fence      BIGINT      NOT NULL,
        checkpoint JSONB       NOT NULL,
        records    BIGINT      NOT NULL DEFAULT 0,
        pages      BIGINT      NOT NULL DEFAULT 0,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, run_id, shard))";

    /// Insert, or raise the fence if lower. The conflicting row stays locked until the
    /// transaction ends even when the WHERE is false, so the read that follows is stable.
    /// Extra parameters: fence, checkpoint JSON.
    pub const CLAIM: &str = "INSERT INTO apitap_checkpoints AS c
            (pipeline, run_id, shard, fence, checkpoint)
        VALUES ($1, $2, $3, $4, $5::jsonb)
        ON CONFLICT (pipeline, run_id, shard) DO UPDATE
            SET fence = EXCLUDED.fence, updated_at = now()
            WHERE c.fence < EXCLUDED.fence";

    pub const READ: &str = "SELECT fence, checkpoint::text FROM apitap_checkpoints
        WHERE pipeline = $1 AND run_id = $2 AND shard = $3";

    /// Locks the row for the rest of the commit transaction: a concurrent claim by a newer
    /// lease waits until this commit ends, and then wins.
    pub const LOCK: &str = "SELECT fence FROM apitap_checkpoints
        WHERE pipeline = $1 AND run_id = $2 AND shard = $3 FOR UPDATE";

    /// Extra parameters: checkpoint JSON, records, pages, fence.
    pub const UPDATE: &str = "UPDATE apitap_checkpoints
        SET checkpoint = $4::jsonb, records = $5, pages = $6, fence = $7, updated_at = now()
        WHERE pipeline = $1 AND run_id = $2 AND shard = $3";
}

/// SQLite: `BEGIN IMMEDIATE` takes the database's write lock up front, which plays the
/// part of PostgreSQL's row lock.
pub(crate) mod sqlite {
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS apitap_checkpoints (
        pipeline   TEXT    NOT NULL,
        run_id     INTEGER NOT NULL,
        shard      INTEGER NOT NULL,
        fence      INTEGER NOT NULL,
        checkpoint TEXT    NOT NULL,
        records    INTEGER NOT NULL DEFAULT 0,
        pages      INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (pipeline, run_id, shard))";

    /// Extra parameters: fence, checkpoint JSON.
    pub const CLAIM: &str = "INSERT INTO apitap_checkpoints
            (pipeline, run_id, shard, fence, checkpoint)
        VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (pipeline, run_id, shard) DO UPDATE
            SET fence = excluded.fence,
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
            WHERE apitap_checkpoints.fence < excluded.fence";

    pub const READ: &str = "SELECT fence, checkpoint FROM apitap_checkpoints
        WHERE pipeline = ? AND run_id = ? AND shard = ?";

    /// Parameters (note the order): checkpoint JSON, records, pages, fence, then the key.
    pub const UPDATE: &str = "UPDATE apitap_checkpoints
        SET checkpoint = ?, records = ?, pages = ?, fence = ?,
            updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
        WHERE pipeline = ? AND run_id = ? AND shard = ?";
}

use apitap_common::checkpoint::Checkpoint;

use super::error::{to_i64, to_u64};
use super::{ShardRef, SinkError};

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
}

/// The stored checkpoint JSON; ApiTap wrote it, so a parse failure is an internal error.
pub(crate) fn parse_checkpoint(text: &str) -> Result<Checkpoint, SinkError> {
    Checkpoint::from_json(text)
        .map_err(|e| SinkError::Internal(format!("stored checkpoint {text:?} is unreadable: {e}")))
}

/// The commit-time fence check shared by both sinks.
pub(crate) fn check_fence(stored: Option<i64>, ours: i64, fence: u64) -> Result<(), SinkError> {
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
