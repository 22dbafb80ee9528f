//! What a shard is waiting on, for its heartbeat: while [`breaker::pass`](super::breaker)
//! holds a shard's request back because its host's circuit breaker is open (or probing),
//! the shard's [`WaitSlot`] names the host, the state and until when. The agent reads the
//! slot of each lease it holds and sends it with the heartbeat, so that `describe run`
//! shows why a shard makes no progress.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A shard's wait on a breaker, as the heartbeat reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The breaker's `host:port`.
    pub host: String,
    /// `open` or `half-open` (a probe is in flight).
    pub state: &'static str,
    /// Until when the breaker stays open (Unix ms; 0 while a probe is in flight).
    pub until_ms: u64,
}

/// One shard's current wait, if any. Shared by the shard's fetcher and the agent.
#[derive(Debug, Default)]
pub struct WaitSlot(Mutex<Option<Waiting>>);

impl WaitSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Waiting>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the shard waits on now.
    pub fn get(&self) -> Option<Waiting> {
        self.lock().clone()
    }

    pub(crate) fn set(&self, w: Waiting) {
        *self.lock() = Some(w);
    }

    pub(crate) fn clear(&self) {
        *self.lock() = None;
    }
}

/// Clears the slot when the wait ends, however it ends (admitted, gave up, cancelled).
pub(crate) struct ClearOnDrop<'a>(pub(crate) Option<&'a WaitSlot>);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            slot.clear();
        }
    }
}

/// `at` as Unix ms.
pub(crate) fn unix_ms(at: Instant) -> u64 {
    let wall = SystemTime::now() + at.saturating_duration_since(Instant::now());
    wall.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
