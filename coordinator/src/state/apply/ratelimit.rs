//! Global rate-limit keys and their cluster-wide back-offs.

use apitap_proto::limits::MAX_RETRY_AFTER_MS;
use serde::{Deserialize, Serialize};

use super::{done, rejected, Applied};
use crate::state::command::Key;
use crate::state::model::{RateLimitRecord, State};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetRateLimit {
    pub key: String,
    pub rps: f64,
    pub burst: u32,
}

impl SetRateLimit {
    pub fn apply(&self, state: &mut State) -> Applied {
        set_limit(state, &self.key, self.rps, self.burst, None);
        done(vec![Key::RateLimit(self.key.clone())])
    }
}

/// Remove a key, or (with `backoff_only`) end its back-off now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteRateLimit {
    pub key: String,
    #[serde(default)]
    pub backoff_only: bool,
}

impl DeleteRateLimit {
    pub fn apply(&self, state: &mut State) -> Applied {
        if self.backoff_only {
            let Some(l) = state.rate_limits.get_mut(&self.key) else {
                return rejected(format!("no rate limit for {}", self.key));
            };
            l.backoff_until_ms = 0;
        } else if state.rate_limits.remove(&self.key).is_none() {
            return rejected(format!("no rate limit for {}", self.key));
        }
        done(vec![Key::RateLimit(self.key.clone())])
    }
}

/// Nobody calls `key` before `until_ms` (only ever extends, and never beyond
/// `now_ms + MAX_RETRY_AFTER_MS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    pub key: String,
    pub until_ms: u64,
    /// When the leader proposed it; 0 in entries written before back-offs were clamped.
    #[serde(default)]
    pub now_ms: u64,
}

impl Backoff {
    pub fn apply(&self, state: &mut State) -> Applied {
        let Some(l) = state.rate_limits.get_mut(&self.key) else {
            return rejected(format!("no rate limit for {}", self.key));
        };
        let until = if self.now_ms == 0 {
            self.until_ms
        } else {
            self.until_ms
                .min(self.now_ms.saturating_add(MAX_RETRY_AFTER_MS))
        };
        l.backoff_until_ms = l.backoff_until_ms.max(until);
        done(vec![Key::RateLimit(self.key.clone())])
    }
}

/// Sets a key's limit. `by` is the namespace of the pipeline that asks (`None`: an admin's
/// `ratelimit set`): a key another namespace's pipeline created is left as it is. Returns
/// whether the key changed.
pub(super) fn set_limit(
    state: &mut State,
    key: &str,
    rps: f64,
    burst: u32,
    by: Option<&str>,
) -> bool {
    let l = state
        .rate_limits
        .entry(key.to_string())
        .or_insert_with(|| RateLimitRecord {
            key: key.to_string(),
            rps,
            burst,
            backoff_until_ms: 0,
            owner: by.map(str::to_string),
        });
    if let (Some(owner), Some(by)) = (&l.owner, by) {
        if owner != by {
            return false;
        }
    }
    if l.owner.is_none() {
        l.owner = by.map(str::to_string);
    }
    l.rps = rps;
    l.burst = burst;
    true
}
