//! The coordinator's Prometheus metrics (served on the admin server's `/metrics`).
//!
//! Events the node sees happen (lease grants and expiries it proposed, leader changes it
//! observed) are counted here as they happen; everything that is a fact about the replicated
//! state or about Raft (role, term, indexes, pipelines, runs and shards by state) is read at
//! scrape time (`api::exposition`), so it can never drift from what it describes. Counters
//! are per process:
//! a new leader's grant counter starts where its own left off.
//!
//! The primitives and the text format are `apitap_common::metrics` (why hand-rolled: see there).

use std::time::Duration;

use apitap_common::metrics::{Counter, Histogram};

use crate::error::Result;
use crate::state::command::{Command, CommandResult};

/// What a coordinator counts; one per node, created with the node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Leases granted by `GrantLeases` commands this node proposed and Raft applied.
    pub leases_granted: Counter,
    /// `ExpireLease` commands this node proposed and Raft applied.
    pub leases_expired: Counter,
    /// Time from proposing a `GrantLeases` batch to its result (commit and apply); latency
    /// buckets.
    pub lease_grant_seconds: Histogram,
    /// Times this node saw a new (leader, term).
    pub leader_changes: Counter,
    /// Due shards the per-namespace concurrent-shard quota held back, summed over this
    /// node's scheduler ticks (a namespace at `--max-shards-per-namespace`).
    pub quota_deferred_shards: Counter,
}

impl Metrics {
    /// Counts the outcome of a proposal the scheduler made.
    pub fn observe_proposal(
        &self,
        kind: ProposalKind,
        result: &Result<CommandResult>,
        took: Duration,
    ) {
        let applied = matches!(
            result,
            Ok(CommandResult::Granted { .. } | CommandResult::Done)
        );
        match kind {
            ProposalKind::Grant => {
                self.lease_grant_seconds.observe_duration(took);
                if let Ok(CommandResult::Granted { granted, .. }) = result {
                    self.leases_granted.add(u64::from(*granted));
                }
            }
            ProposalKind::Expire if applied => self.leases_expired.inc(),
            _ => {}
        }
    }
}

/// Which proposals the metrics care about; taken before the command is moved into Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalKind {
    Grant,
    Expire,
    Other,
}

impl ProposalKind {
    pub fn of(cmd: &Command) -> Self {
        match cmd {
            Command::GrantLeases(_) => ProposalKind::Grant,
            Command::ExpireLease(_) => ProposalKind::Expire,
            _ => ProposalKind::Other,
        }
    }
}
