//! The named transitions of a shard's and a run's lifecycle. `apply` changes `state` fields
//! only through these, so every legal move is written once and an illegal one is refused in
//! one place:
//!
//! ```text
//! shard:  Pending --grant--> Leased --release/expire--> Pending
//!                            Leased --succeed--> Succeeded
//!                            Leased --fail--> Pending (retriable, attempts left) | Failed
//!         any non-terminal --cancel--> Cancelled;  Failed|Cancelled --retry--> Pending
//! run:    Pending --(first grant)--> Running --(all shards terminal)--> Succeeded | Failed
//!         any non-terminal --cancel--> Cancelled;  terminal --reopen--> Pending
//! ```

use super::model::{Run, RunState, Shard, ShardState};

/// Back-off before a failed shard is granted again.
pub fn retry_delay_ms(failures: u32) -> u64 {
    (1000u64 << failures.min(6)).min(60_000)
}

impl Shard {
    /// Pending → Leased to `worker` under `fence`. False (and unchanged) if not pending.
    pub fn grant(&mut self, worker: &str, fence: u64, trace: Option<String>) -> bool {
        if self.state != ShardState::Pending {
            return false;
        }
        self.state = ShardState::Leased;
        self.worker = Some(worker.to_string());
        self.fence = fence;
        self.trace = trace;
        self.attempts += 1;
        true
    }

    /// Whether `fence` is this shard's live lease, held by `worker`. An empty `worker`
    /// comes only from log entries written before commands named their worker; those are
    /// checked by fence alone, as they were when they were first applied.
    pub fn held_by(&self, worker: &str, fence: u64) -> bool {
        self.state == ShardState::Leased
            && self.fence == fence
            && (worker.is_empty() || self.worker.as_deref() == Some(worker))
    }

    /// Leased → Pending: the holder gave the lease back or lost it; a checkpoint it
    /// reported on the way out is kept for the next holder.
    pub fn release(&mut self, checkpoint: Option<&String>) {
        debug_assert_eq!(self.state, ShardState::Leased);
        self.state = ShardState::Pending;
        if let Some(cp) = checkpoint {
            self.checkpoint = Some(cp.clone());
        }
    }

    /// Leased → Succeeded.
    pub fn succeed(&mut self) {
        debug_assert_eq!(self.state, ShardState::Leased);
        self.state = ShardState::Succeeded;
    }

    /// Leased → Pending after a back-off while attempts remain and retrying can help,
    /// else → Failed.
    pub fn fail(&mut self, retriable: bool, max_attempts: u32, now_ms: u64) {
        debug_assert_eq!(self.state, ShardState::Leased);
        self.failures += 1;
        if retriable && self.failures < max_attempts {
            self.state = ShardState::Pending;
            self.not_before_ms = now_ms.saturating_add(retry_delay_ms(self.failures));
        } else {
            self.state = ShardState::Failed;
        }
    }

    /// Any non-terminal state → Cancelled.
    pub fn cancel(&mut self) {
        if !self.state.is_terminal() {
            self.state = ShardState::Cancelled;
        }
    }

    /// Failed | Cancelled → Pending with a fresh attempt budget. False if not applicable.
    pub fn retry(&mut self) -> bool {
        if !matches!(self.state, ShardState::Failed | ShardState::Cancelled) {
            return false;
        }
        self.state = ShardState::Pending;
        self.failures = 0;
        self.not_before_ms = 0;
        self.error = None;
        true
    }
}

impl Run {
    /// The run's shard at `shard` (its index in the spec's expansion).
    pub fn shard_pos(&self, shard: u32) -> Option<usize> {
        self.shards.iter().position(|s| s.def.index == shard)
    }

    /// The first grant makes a pending run running.
    pub fn mark_running(&mut self) {
        if self.state == RunState::Pending {
            self.state = RunState::Running;
        }
    }

    /// Any non-terminal state → Cancelled, with every unfinished shard.
    pub fn cancel(&mut self, now_ms: u64) {
        for s in &mut self.shards {
            s.cancel();
        }
        self.state = RunState::Cancelled;
        self.finished_at_ms = Some(now_ms);
    }

    /// Terminal → Pending again (after `Shard::retry` of some of its shards).
    pub fn reopen(&mut self) {
        self.state = RunState::Pending;
        self.finished_at_ms = None;
        self.error = None;
    }

    /// Running → Succeeded | Failed once every shard is terminal.
    pub fn finish_if_done(&mut self, now_ms: u64) {
        if !self.shards.iter().all(|s| s.state.is_terminal()) {
            return;
        }
        let failed: Vec<_> = self
            .shards
            .iter()
            .filter(|s| s.state == ShardState::Failed)
            .collect();
        if let Some(first) = failed.first() {
            self.error = Some(format!(
                "{} of {} shards failed; first error: {}",
                failed.len(),
                self.shards.len(),
                first.error.clone().unwrap_or_default()
            ));
            self.state = RunState::Failed;
        } else {
            self.state = RunState::Succeeded;
        }
        self.finished_at_ms = Some(now_ms);
    }
}
