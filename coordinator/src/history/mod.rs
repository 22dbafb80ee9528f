//! What this node remembers of the recent past for the console and the JSON API: leader
//! elections it observed and, while it leads, the granted and used rate of each rate-limit
//! key over the last minutes. Memory only, bounded (`--history-elections`,
//! `--history-rate-keys`), lost on restart; nothing here is replicated.

pub mod elections;
pub mod rates;

pub use elections::Elections;
pub use rates::{RateHistory, RateSample, RateSeries};

/// The node's recent history.
#[derive(Debug)]
pub struct History {
    pub elections: Elections,
    pub rates: RateHistory,
}

impl History {
    /// Keeps at most `elections` elections and the series of at most `rate_keys` keys.
    pub fn new(elections: usize, rate_keys: usize) -> Self {
        Self {
            elections: Elections::new(elections),
            rates: RateHistory::new(rate_keys),
        }
    }
}
