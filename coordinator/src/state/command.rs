//! Commands of the replicated log. Each variant carries a typed payload that applies
//! itself (`state::apply`); [`apply`] only dispatches. Payloads serialize exactly as the
//! struct variants of earlier versions did, so existing logs and snapshots replay.

use serde::{Deserialize, Serialize};

pub use super::apply::access::{Audited, CreateToken, RecordAudit, RevokeToken};
pub use super::apply::lease::{
    Checkpoint, CompleteShard, ExpireLease, GrantLeases, LeaseGrant, ReleaseLease,
};
pub use super::apply::pipeline::{DeletePipeline, PutPipeline, Quota, ResealSecrets};
pub use super::apply::ratelimit::{Backoff, DeleteRateLimit, SetRateLimit};
pub use super::apply::run::{CancelRun, PruneRuns, RetryRun, StartRun};
pub use super::apply::worker::{ForgetWorkers, RegisterWorker};
use super::apply::Applied;
use super::model::State;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    PutPipeline(PutPipeline),
    DeletePipeline(DeletePipeline),
    StartRun(StartRun),
    CancelRun(CancelRun),
    RetryRun(RetryRun),
    SetRateLimit(SetRateLimit),
    Backoff(Backoff),
    RegisterWorker(RegisterWorker),
    GrantLeases(GrantLeases),
    ExpireLease(ExpireLease),
    ReleaseLease(ReleaseLease),
    Checkpoint(Checkpoint),
    CompleteShard(CompleteShard),
    PruneRuns(PruneRuns),
    ForgetWorkers(ForgetWorkers),
    CreateToken(CreateToken),
    RevokeToken(RevokeToken),
    /// A control command and who made it (see [`Audited`]).
    Audited(Audited),
    RecordAudit(RecordAudit),
    ResealSecrets(ResealSecrets),
    DeleteRateLimit(DeleteRateLimit),
}

impl Command {
    /// The audit trail's (action, object) for this command.
    pub fn describe(&self) -> (String, String) {
        let (action, object) = match self {
            Command::PutPipeline(c) => ("submit", format!("pipeline {}", c.key())),
            Command::DeletePipeline(c) => ("delete", format!("pipeline {}", c.name)),
            Command::StartRun(c) => ("run", format!("pipeline {}", c.pipeline)),
            Command::CancelRun(c) => ("cancel", format!("run {}", c.run_id)),
            Command::RetryRun(c) => ("retry", format!("run {}", c.run_id)),
            Command::SetRateLimit(c) => (
                "ratelimit-set",
                format!("key {} rps={} burst={}", c.key, c.rps, c.burst),
            ),
            Command::Backoff(c) => ("backoff", format!("key {}", c.key)),
            Command::RegisterWorker(c) => ("register", format!("worker {}", c.id)),
            Command::GrantLeases(c) => ("grant", format!("{} leases", c.grants.len())),
            Command::ExpireLease(c) => ("expire", format!("run {} shard {}", c.run_id, c.shard)),
            Command::ReleaseLease(c) => ("release", format!("run {} shard {}", c.run_id, c.shard)),
            Command::Checkpoint(c) => ("checkpoint", format!("run {} shard {}", c.run_id, c.shard)),
            Command::CompleteShard(c) => {
                ("complete", format!("run {} shard {}", c.run_id, c.shard))
            }
            Command::PruneRuns(c) => ("prune", format!("{} runs", c.run_ids.len())),
            Command::ForgetWorkers(c) => ("forget", format!("{} workers", c.ids.len())),
            Command::CreateToken(c) => (
                "token-create",
                format!(
                    "token {} ({}, {}, namespaces {})",
                    c.token.id,
                    c.token.name,
                    c.token.role.as_str(),
                    c.token.namespaces.join(",")
                ),
            ),
            Command::RevokeToken(c) => ("token-revoke", format!("token {}", c.id)),
            Command::ResealSecrets(c) => ("secrets-reseal", format!("pipeline {}", c.pipeline)),
            Command::DeleteRateLimit(c) if c.backoff_only => {
                ("ratelimit-clear-backoff", format!("key {}", c.key))
            }
            Command::DeleteRateLimit(c) => ("ratelimit-delete", format!("key {}", c.key)),
            Command::Audited(c) => return c.cmd.describe(),
            Command::RecordAudit(c) => return (c.record.action.clone(), c.record.object.clone()),
        };
        (action.to_string(), object)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandResult {
    Done,
    PipelineStored {
        version: u64,
        created: bool,
        run_id: Option<u64>,
    },
    RunStarted {
        run_id: u64,
    },
    Granted {
        fence: u64,
        /// How many of the grants applied (a shard no longer pending is skipped).
        granted: u32,
    },
    PipelineDeleted {
        runs_cancelled: u32,
    },
    /// How many records a retention command removed.
    Removed {
        count: u32,
    },
    Rejected {
        reason: String,
    },
}

/// A record changed by a command; the state machine persists exactly these. `Run` stands
/// for the run with all of its shards.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Pipeline(String),
    Run(u64),
    Worker(String),
    RateLimit(String),
    /// One shard of a run (and the run's own fields), by shard position.
    Shard(u64, usize),
    /// A deleted run and how many shards it had (their records are deleted too).
    RemovedRun(u64, usize),
    /// A token, written if present and deleted if not.
    Token(String),
    /// An audit record by sequence number, written if present and deleted if not.
    Audit(u64),
}

/// Applies `cmd`, committed at `log_index`, and returns its result and the records it touched.
pub fn apply(state: &mut State, log_index: u64, cmd: &Command) -> Applied {
    match cmd {
        Command::PutPipeline(c) => c.apply(state),
        Command::DeletePipeline(c) => c.apply(state),
        Command::StartRun(c) => c.apply(state),
        Command::CancelRun(c) => c.apply(state),
        Command::RetryRun(c) => c.apply(state),
        Command::SetRateLimit(c) => c.apply(state),
        Command::Backoff(c) => c.apply(state),
        Command::RegisterWorker(c) => c.apply(state),
        Command::GrantLeases(c) => c.apply(state, log_index),
        Command::ExpireLease(c) => c.apply(state),
        Command::ReleaseLease(c) => c.apply(state),
        Command::Checkpoint(c) => c.apply(state),
        Command::CompleteShard(c) => c.apply(state),
        Command::PruneRuns(c) => c.apply(state),
        Command::ForgetWorkers(c) => c.apply(state),
        Command::CreateToken(c) => c.apply(state),
        Command::RevokeToken(c) => c.apply(state),
        Command::Audited(c) => c.apply(state, log_index),
        Command::RecordAudit(c) => c.apply(state),
        Command::ResealSecrets(c) => c.apply(state),
        Command::DeleteRateLimit(c) => c.apply(state),
    }
}
