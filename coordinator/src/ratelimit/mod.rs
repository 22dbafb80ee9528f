//! Global rate budgets (DESIGN §7), leader memory only: who holds which share of each key's
//! limit, until when. Capacity leases in the manner of Doorman: workers ask for the rate
//! they want, get a fair share with a short TTL, and renew before it ends.

pub mod allocation;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long a grant is valid; workers renew well before.
pub const GRANT_TTL: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone)]
struct Held {
    rps: f64,
    wants: f64,
    expires: Instant,
}

#[derive(Debug, Default)]
struct KeyBudget {
    held: HashMap<String, Held>,
    /// (report time, requests) of the last second, for listings.
    used: Vec<(Instant, u64)>,
    /// Requests reported for the key since this leader's term began, for the history.
    used_total: u64,
}

#[derive(Debug, Default)]
pub struct Budgets {
    /// The term these grants belong to; a new leader starts learning afresh.
    term: Option<u64>,
    /// Until then, grant nothing beyond what workers report they hold.
    learning_until: Option<Instant>,
    keys: HashMap<String, KeyBudget>,
}

/// One worker's renewal for one key.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub key: &'a str,
    /// The key's limit (requests per second, whole fleet).
    pub limit: f64,
    /// The key's burst (requests, whole fleet).
    pub burst: u32,
    pub worker: &'a str,
    /// The rate the worker could use now.
    pub wants: f64,
    /// What it holds from an earlier grant (perhaps from an earlier leader).
    pub has: f64,
    /// Requests it sent since its previous renewal.
    pub used: u64,
}

/// A key's current allocation, for listings.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub granted_rps: f64,
    pub used_last_second: u64,
    pub workers: u32,
    /// Requests reported since this leader's term began (falls back to 0 in a new term).
    pub used_total: u64,
}

impl Budgets {
    /// Grants the asking worker its share of the key's limit.
    pub fn acquire(&mut self, term: u64, ask: Ask<'_>, now: Instant) -> f64 {
        let Ask {
            key,
            limit,
            burst,
            worker,
            wants,
            has,
            used,
        } = ask;
        if self.term != Some(term) {
            self.term = Some(term);
            self.learning_until = Some(now + GRANT_TTL);
            self.keys.clear();
        }
        let learning = self.learning_until.is_some_and(|t| now < t);
        let kb = self.keys.entry(key.to_string()).or_default();
        kb.held.retain(|_, h| h.expires > now);
        kb.used
            .retain(|(t, _)| now.duration_since(*t) < Duration::from_secs(1));
        if used > 0 {
            kb.used.push((now, used));
            kb.used_total = kb.used_total.saturating_add(used);
        }
        // A new leader has not heard from every holder yet: hand out no new capacity.
        let wants = if learning { wants.min(has) } else { wants };
        let mut demands: BTreeMap<String, f64> =
            kb.held.iter().map(|(w, h)| (w.clone(), h.wants)).collect();
        demands.insert(worker.to_string(), wants);
        let others: Vec<f64> = kb
            .held
            .iter()
            .filter(|(w, _)| *w != worker)
            .map(|(_, h)| h.rps)
            .collect();
        let rps = allocation::grant(limit, burst, worker, &demands, &others);
        kb.held.insert(
            worker.to_string(),
            Held {
                rps,
                wants,
                expires: now + GRANT_TTL,
            },
        );
        rps
    }

    pub fn usage(&self, key: &str, now: Instant) -> Usage {
        let Some(kb) = self.keys.get(key) else {
            return Usage::default();
        };
        let live: Vec<&Held> = kb.held.values().filter(|h| h.expires > now).collect();
        Usage {
            granted_rps: live.iter().map(|h| h.rps).sum(),
            used_last_second: kb
                .used
                .iter()
                .filter(|(t, _)| now.duration_since(*t) < Duration::from_secs(1))
                .map(|(_, n)| n)
                .sum(),
            workers: live.len() as u32,
            used_total: kb.used_total,
        }
    }
}
