//! The records all of this worker's open batches hold together (`--max-batched-records`).
//!
//! Each shard gathers pages into its open batch until `spec.batch.max_records` (up to
//! 1,000,000) or `max_wait`; a worker with 1,000 slots could so hold 1,000 full batches at
//! once. This budget bounds the sum: once the worker's open batches hold more records than
//! it allows, every shard commits its batch at its next page instead of gathering more. A
//! page is always taken (a shard never waits for another's commit), so the budget can be
//! passed by at most one page per slot, and each page is bounded by the fetch limits.

use std::sync::atomic::{AtomicU64, Ordering};

/// Default of `--max-batched-records`.
pub const DEFAULT_MAX_BATCHED_RECORDS: u64 = 500_000;
/// Bounds of `--max-batched-records`.
pub const MIN_MAX_BATCHED_RECORDS: u64 = 1;
pub const MAX_MAX_BATCHED_RECORDS: u64 = 100_000_000;

#[derive(Debug)]
pub struct BatchMemory {
    limit: u64,
    held: AtomicU64,
}

impl BatchMemory {
    pub fn new(limit: u64) -> Self {
        Self {
            limit: limit.clamp(MIN_MAX_BATCHED_RECORDS, MAX_MAX_BATCHED_RECORDS),
            held: AtomicU64::new(0),
        }
    }

    /// A page of `records` joined an open batch.
    pub fn hold(&self, records: u64) {
        self.held.fetch_add(records, Ordering::Relaxed);
    }

    /// An open batch of `records` committed or was dropped.
    pub fn release(&self, records: u64) {
        // Never below zero, whatever the order of concurrent calls.
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(records))
            });
    }

    /// The records the worker's open batches hold now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether the open batches hold more than the budget: commit instead of gathering.
    pub fn is_over(&self) -> bool {
        self.held() > self.limit
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl Default for BatchMemory {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BATCHED_RECORDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_over_past_its_limit_and_never_goes_below_zero() {
        let m = BatchMemory::new(100);
        m.hold(60);
        assert!(!m.is_over());
        m.hold(60);
        assert!(m.is_over());
        m.release(60);
        assert!(!m.is_over());
        m.release(1_000);
        assert_eq!(m.held(), 0);
        assert_eq!(BatchMemory::new(0).limit(), MIN_MAX_BATCHED_RECORDS);
    }
}
