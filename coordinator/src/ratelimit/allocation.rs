//! Budget allocation, a pure function: max-min fair shares of a key's limit among the
//! workers asking, capped so that the shares outstanding never sum above the limit.

use std::collections::BTreeMap;

/// Max-min fair shares ("water filling"): nobody gets more than it wants, what one does not
/// use goes to the others, and the shares sum to at most `limit`.
pub fn fair_shares(limit: f64, demands: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = demands.keys().map(|k| (k.clone(), 0.0)).collect();
    let mut open: Vec<(&String, f64)> = demands.iter().map(|(k, w)| (k, w.max(0.0))).collect();
    let mut left = limit.max(0.0);
    while !open.is_empty() && left > 1e-9 {
        let each = left / open.len() as f64;
        let mut next = Vec::new();
        for (k, want) in open {
            let got = out[k];
            let take = (want - got).min(each);
            *out.get_mut(k).expect("listed") += take;
            left -= take;
            if want - got - take > 1e-9 {
                next.push((k, want));
            }
        }
        if next.len() == demands.len() && each < 1e-9 {
            break;
        }
        open = next;
    }
    out
}

/// The share to grant `worker` now: its fair share, but never more than what the others'
/// unexpired grants leave of the limit. (Others shrink to their fair share when they renew.)
pub fn grant(
    limit: f64,
    worker: &str,
    demands: &BTreeMap<String, f64>,
    outstanding_others: f64,
) -> f64 {
    let fair = fair_shares(limit, demands)
        .get(worker)
        .copied()
        .unwrap_or(0.0);
    fair.min((limit - outstanding_others).max(0.0))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    fn demands(v: &[(&str, f64)]) -> BTreeMap<String, f64> {
        v.iter().map(|(k, w)| (k.to_string(), *w)).collect()
    }

    #[test]
    fn shares_are_fair_and_redistribute_unused_capacity() {
        let s = fair_shares(50.0, &demands(&[("a", 50.0), ("b", 50.0)]));
        assert_eq!(s["a"], 25.0);
        let s = fair_shares(50.0, &demands(&[("a", 5.0), ("b", 50.0), ("c", 50.0)]));
        assert_eq!(s["a"], 5.0);
        assert!((s["b"] - 22.5).abs() < 1e-9);
    }

    /// Property: whatever the demands and the order of renewals, the grants outstanding
    /// never sum above the limit, and each is at most what was asked.
    #[test]
    fn outstanding_grants_never_exceed_the_limit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..500 {
            let limit = rng.gen_range(1.0..200.0);
            let n = rng.gen_range(1..10);
            let mut wants: BTreeMap<String, f64> = BTreeMap::new();
            let mut held: BTreeMap<String, f64> = BTreeMap::new();
            for _ in 0..50 {
                let w = format!("w{}", rng.gen_range(0..n));
                wants.insert(w.clone(), rng.gen_range(0.0..limit * 1.5));
                let others: f64 = held.iter().filter(|(k, _)| **k != w).map(|(_, v)| v).sum();
                let g = grant(limit, &w, &wants, others);
                assert!(g <= wants[&w] + 1e-9);
                held.insert(w, g);
                let total: f64 = held.values().sum();
                assert!(total <= limit + 1e-6, "{total} > {limit}");
            }
        }
    }
}
