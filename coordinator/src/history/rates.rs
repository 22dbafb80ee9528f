//! Granted and used rate of each rate-limit key over the last minutes, sampled by the
//! leader every [`SAMPLE_EVERY`] from its budgets (`ratelimit::Budgets`) and kept for
//! [`WINDOW`]. A follower keeps nothing: rate use is the leader's soft state.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apitap_common::shutdown::ShutdownSignal;
use serde::Serialize;
use utoipa::ToSchema;

use crate::node::Node;

/// How often the leader samples each key.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// How far back a key's series goes.
pub const WINDOW: Duration = Duration::from_secs(600);

/// Samples one series keeps: [`WINDOW`] / [`SAMPLE_EVERY`].
pub const SAMPLES: usize = (WINDOW.as_secs() / SAMPLE_EVERY.as_secs()) as usize;

/// Default of `--history-rate-keys`: keys with a series (the first ones by name).
pub const DEFAULT_RATE_KEYS: usize = 100;

/// One sample of a key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct RateSample {
    /// When it was taken (Unix ms).
    pub at_ms: u64,
    /// The key's limit then (requests per second, whole fleet).
    pub limit_rps: f64,
    /// The sum of the live grants then.
    pub granted_rps: f64,
    /// Requests the workers reported since the previous sample, per second.
    pub used_rps: f64,
}

/// A key's samples, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RateSeries {
    pub key: String,
    pub samples: Vec<RateSample>,
}

#[derive(Debug, Default)]
struct Series {
    samples: VecDeque<RateSample>,
    /// `used_total` and time of the previous sample, to turn counts into a rate.
    last: Option<(u64, u64)>,
}

/// The series of at most `max_keys` keys.
#[derive(Debug)]
pub struct RateHistory {
    keys: Mutex<HashMap<String, Series>>,
    max_keys: usize,
}

/// What the leader knows of a key at a sample: (key, limit, granted, used since its term).
pub type Reading = (String, f64, f64, u64);

impl RateHistory {
    pub fn new(max_keys: usize) -> Self {
        Self {
            keys: Mutex::default(),
            max_keys: max_keys.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Series>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a sample at `now_ms` for each key read (sorted by key): keys beyond `max_keys`
    /// get no series, keys no longer read lose theirs.
    pub fn record(&self, now_ms: u64, mut readings: Vec<Reading>) {
        readings.sort_by(|a, b| a.0.cmp(&b.0));
        readings.truncate(self.max_keys);
        let mut keys = self.lock();
        keys.retain(|k, _| readings.iter().any(|r| &r.0 == k));
        for (key, limit_rps, granted_rps, used_total) in readings {
            let s = keys.entry(key).or_default();
            // A count that went back belongs to a new term: no rate from it.
            let used_rps = match s.last {
                Some((total, at)) if used_total >= total && now_ms > at => {
                    (used_total - total) as f64 * 1000.0 / (now_ms - at) as f64
                }
                _ => 0.0,
            };
            s.last = Some((used_total, now_ms));
            s.samples.push_back(RateSample {
                at_ms: now_ms,
                limit_rps,
                granted_rps,
                used_rps,
            });
            while s.samples.len() > SAMPLES {
                s.samples.pop_front();
            }
        }
    }

    /// Forgets everything (this node stopped leading).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Every series, by key.
    pub fn series(&self) -> Vec<RateSeries> {
        let mut out: Vec<RateSeries> = self
            .lock()
            .iter()
            .map(|(k, s)| RateSeries {
                key: k.clone(),
                samples: s.samples.iter().copied().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// Samples the leader's budgets every [`SAMPLE_EVERY`] until `shutdown`.
pub async fn sample(node: Arc<Node>, mut shutdown: ShutdownSignal) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        if !node.is_leader() {
            node.history.rates.clear();
            continue;
        }
        let readings = crate::api::views::rate_limit_usage(&node, |l, u| {
            (l.key.clone(), l.rps, u.granted_rps, u.used_total)
        });
        node.history
            .rates
            .record(apitap_common::time::now_ms(), readings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(key: &str, granted: f64, used_total: u64) -> Reading {
        (key.into(), 10.0, granted, used_total)
    }

    #[test]
    fn counts_become_rates_and_series_are_bounded() {
        let h = RateHistory::new(2);
        h.record(0, vec![reading("b", 4.0, 100), reading("a", 5.0, 0)]);
        h.record(5_000, vec![reading("a", 5.0, 40), reading("b", 4.0, 110)]);
        let s = h.series();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].key, "a");
        assert_eq!(s[0].samples[0].used_rps, 0.0, "no rate from a first count");
        assert_eq!(s[0].samples[1].used_rps, 8.0);
        assert_eq!(s[1].samples[1].used_rps, 2.0);
        // A new term starts the count over: no negative rate.
        h.record(10_000, vec![reading("a", 5.0, 3), reading("b", 4.0, 110)]);
        assert_eq!(h.series()[0].samples[2].used_rps, 0.0);
        for i in 0..(SAMPLES as u64 + 10) {
            h.record(20_000 + i * 5_000, vec![reading("a", 1.0, 0)]);
        }
        let s = h.series();
        assert_eq!(s.len(), 1, "a key no longer read loses its series");
        assert_eq!(s[0].samples.len(), SAMPLES);
    }

    #[test]
    fn keys_beyond_the_bound_get_no_series() {
        let h = RateHistory::new(2);
        h.record(
            0,
            vec![
                reading("c", 1.0, 0),
                reading("a", 1.0, 0),
                reading("b", 1.0, 0),
            ],
        );
        let keys: Vec<String> = h.series().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["a", "b"]);
    }
}
