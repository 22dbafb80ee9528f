//! Budget allocation, a pure function: max-min fair shares of a key's limit among the
//! workers asking, capped so that the shares outstanding never sum above the limit, and so
//! that the fleet's worst 1-second window (every worker's rate plus its bucket, see
//! [`apitap_common::budget`]) stays within `limit + burst`.

use std::collections::BTreeMap;

use apitap_common::budget::{worker_burst, worker_window};

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
            let got = out.get(k).copied().unwrap_or(0.0);
            let take = (want - got).min(each);
            if let Some(v) = out.get_mut(k) {
                *v += take;
            }
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

/// The share to grant `worker` now, of a key limited to `limit` rps with `burst`.
///
/// Its fair share of the limit, lowered when the workers' buckets (at least one token each)
/// would together hold more than `burst`: then the rates share `limit + burst − buckets`,
/// but never less than half the limit, so that a fleet with more workers than
/// `burst + limit / 2` still makes progress (its window may then pass `limit + burst` by
/// what its buckets hold beyond that). And never more than what the others' unexpired
/// grants (`others`, their rates) leave of the limit, nor, within that guarantee, of the
/// window. (Others shrink to their fair share when they renew.)
pub fn grant(
    limit: f64,
    burst: u32,
    worker: &str,
    demands: &BTreeMap<String, f64>,
    others: &[f64],
) -> f64 {
    let ceiling = limit + f64::from(burst);
    let buckets: f64 = fair_shares(limit, demands)
        .values()
        .filter(|r| **r > 0.0)
        .map(|r| worker_burst(burst, *r, limit))
        .sum();
    let floor = limit / 2.0;
    let guaranteed = ceiling - buckets >= floor;
    let effective = limit.min((ceiling - buckets).max(floor));
    let fair = fair_shares(effective, demands)
        .get(worker)
        .copied()
        .unwrap_or(0.0);
    let others_rps: f64 = others.iter().sum();
    let others_window: f64 = others.iter().map(|r| worker_window(burst, *r, limit)).sum();
    // A smaller rate never has a deeper bucket, so `fair`'s bucket bounds the granted one's.
    // Past the guarantee the window is not capped, or the fleet would stall.
    let window_room = if guaranteed {
        ceiling - others_window - worker_burst(burst, fair, limit)
    } else {
        f64::INFINITY
    };
    fair.min(limit - others_rps).min(window_room).max(0.0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the demands and the order of renewals, the grants outstanding never sum
        /// above the limit, their buckets never let the fleet's 1-second window above
        /// `limit + burst`, and each is at most what was asked. A renewal is a worker
        /// number (taken modulo `n`) and its demand as a fraction of the limit.
        #[test]
        fn outstanding_grants_never_exceed_the_limit_or_the_window(
            limit in 1.0f64..200.0,
            burst in 1u32..20,
            n in 1usize..30,
            renewals in prop::collection::vec((0usize..30, 0.0f64..1.5), 1..80),
        ) {
            let mut wants: BTreeMap<String, f64> = BTreeMap::new();
            let mut held: BTreeMap<String, f64> = BTreeMap::new();
            let ceiling = limit + f64::from(burst);
            for (worker, fraction) in renewals {
                let w = format!("w{}", worker % n);
                let want = fraction * limit;
                wants.insert(w.clone(), want);
                let g = grant(limit, burst, &w, &wants, &others(&held, &w));
                prop_assert!(g <= want + 1e-9, "{} granted {} > asked {}", w, g, want);
                held.insert(w, g);
                let total: f64 = held.values().sum();
                prop_assert!(total <= limit + 1e-6, "{} > {}", total, limit);
                let window: f64 = held.values().map(|r| worker_window(burst, *r, limit)).sum();
                // Guaranteed while the buckets fit: at most `burst + limit / 2` workers.
                if (n as f64) <= f64::from(burst) + limit / 2.0 {
                    prop_assert!(window <= ceiling + 1e-6, "window {} > {}", window, ceiling);
                }
            }
        }
    }

    fn others(held: &BTreeMap<String, f64>, me: &str) -> Vec<f64> {
        held.iter()
            .filter(|(k, _)| *k != me)
            .map(|(_, v)| *v)
            .collect()
    }

    /// `n` workers that all want the whole limit renew in turn until the grants settle.
    fn settle(limit: f64, burst: u32, n: usize) -> BTreeMap<String, f64> {
        let wants: BTreeMap<String, f64> = (0..n).map(|i| (format!("w{i}"), limit)).collect();
        let mut held = BTreeMap::new();
        for _ in 0..5 {
            for w in wants.keys() {
                let g = grant(limit, burst, w, &wants, &others(&held, w));
                held.insert(w.clone(), g);
            }
        }
        held
    }

    #[test]
    fn many_small_shares_make_room_for_their_buckets() {
        // 16 workers, 50 rps, burst 5: each bucket holds a token, so the rates share 55 − 16.
        let held = settle(50.0, 5, 16);
        let total: f64 = held.values().sum();
        assert!((total - 39.0).abs() < 1e-6, "{held:?}");
        assert!(held.values().all(|r| (r - 39.0 / 16.0).abs() < 1e-6));
        // With a burst of 16 the buckets fit in it and the whole limit is shared.
        let total: f64 = settle(50.0, 16, 16).values().sum();
        assert!((total - 50.0).abs() < 1e-6);
        // A few workers never lose rate to their buckets.
        let total: f64 = settle(50.0, 5, 4).values().sum();
        assert!((total - 50.0).abs() < 1e-6);
    }

    #[test]
    fn more_workers_than_the_window_holds_still_share_half_the_limit() {
        // 60 buckets of one token on 50 rps + 5: past the guarantee, rates keep half the limit.
        let held = settle(50.0, 5, 60);
        let total: f64 = held.values().sum();
        assert!((total - 25.0).abs() < 1e-6, "{total}");
        assert!(held.values().all(|r| *r > 0.0), "nobody starves: {held:?}");
        // The smallest case: 1 rps, burst 1, two workers.
        let total: f64 = settle(1.0, 1, 2).values().sum();
        assert!(total >= 0.5 - 1e-9, "{total}");
    }
}
