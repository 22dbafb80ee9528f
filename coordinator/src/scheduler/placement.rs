//! Which live worker gets which pending shard. A pure function: state in, plan out.
//!
//! Consistent hashing (the `consistent_hash` crate's virtual-node ring) of the shard key
//! over workers with free slots, each weighted by its free slots: within a run, a shard
//! prefers the same worker, and a worker joining or leaving moves only about its share of
//! shards. A worker that is full passes the shard to the next candidate on the ring.

use consistent_hash::{DefaultHash, Node, StaticHashRing};

/// Virtual nodes per free slot.
const VNODES_PER_SLOT: usize = 16;

/// A worker that can take leases now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub free_slots: u32,
}

/// A shard waiting for a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingShard {
    pub run_id: u64,
    pub shard: u32,
    pub key: String,
}

/// Assigns pending shards, in order, to candidates while they have free slots.
pub fn place(pending: &[PendingShard], candidates: &[Candidate]) -> Vec<(PendingShard, String)> {
    let nodes = candidates
        .iter()
        .filter(|c| c.free_slots > 0)
        .map(|c| Node::new(c.id.clone()).quantity(c.free_slots as usize * VNODES_PER_SLOT));
    let ring = StaticHashRing::new(DefaultHash, nodes);
    let mut free: std::collections::HashMap<&str, u32> = candidates
        .iter()
        .map(|c| (c.id.as_str(), c.free_slots))
        .collect();
    let mut out = Vec::new();
    for p in pending {
        let key = format!("{}/{}", p.run_id, p.key);
        let chosen = ring
            .calc_candidates(&key)
            .map(|n| n.key.clone())
            .find(|id| free.get(id.as_str()).is_some_and(|s| *s > 0));
        let Some(id) = chosen else { break };
        if let Some(s) = free.get_mut(id.as_str()) {
            *s -= 1;
        }
        out.push((p.clone(), id));
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn shards(run_id: u64, n: u32) -> Vec<PendingShard> {
        (0..n)
            .map(|i| PendingShard {
                run_id,
                shard: i,
                key: format!("s{i}"),
            })
            .collect()
    }

    fn workers(n: usize, slots: u32) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                id: format!("w{i}"),
                free_slots: slots,
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the workers' free slots and the number of shards, no worker gets more
        /// shards than it has free slots, and shards are placed while any slot is free.
        #[test]
        fn never_exceeds_free_slots_and_places_while_capacity_lasts(
            slots in prop::collection::vec(0u32..5, 0..6),
            n in 0u32..40,
        ) {
            let ws: Vec<Candidate> = slots
                .iter()
                .enumerate()
                .map(|(i, s)| Candidate { id: format!("w{i}"), free_slots: *s })
                .collect();
            let plan = place(&shards(1, n), &ws);
            let capacity: u32 = ws.iter().map(|w| w.free_slots).sum();
            prop_assert_eq!(plan.len() as u32, n.min(capacity));
            for w in &ws {
                let used = plan.iter().filter(|(_, id)| *id == w.id).count() as u32;
                prop_assert!(used <= w.free_slots, "{} got {} > {}", w.id, used, w.free_slots);
            }
        }
    }

    /// Shards per run in the membership property.
    const TOTAL: u32 = 200;

    proptest! {
        // Each case builds three rings of up to 8 × 200 × 16 virtual nodes: 20 cases keep
        // this property near a second in a debug build.
        #![proptest_config(ProptestConfig::with_cases(20))]

        /// With spare capacity (every worker has a slot for each shard, so none is ever
        /// full), removing one of N workers moves only the shards it held, and adding one
        /// moves about 1/(N+1) of them, to the newcomer only. The run id changes every key,
        /// so each case hashes another set of shards.
        #[test]
        fn membership_changes_move_only_their_share(
            n in 2usize..8,
            run_id in any::<u64>(),
            gone in any::<prop::sample::Index>(),
        ) {
            let ws = workers(n, TOTAL);
            let before = place(&shards(run_id, TOTAL), &ws);

            let gone = format!("w{}", gone.index(n));
            let fewer: Vec<Candidate> = ws.iter().filter(|w| w.id != gone).cloned().collect();
            let after = place(&shards(run_id, TOTAL), &fewer);
            prop_assert_eq!(after.len(), before.len());
            for ((s, w1), (_, w2)) in before.iter().zip(&after) {
                if *w1 != gone {
                    prop_assert_eq!(w1, w2, "shard {} moved without cause", s.key);
                }
            }

            let mut more = ws.clone();
            more.push(Candidate { id: "new".into(), free_slots: TOTAL });
            let grown = place(&shards(run_id, TOTAL), &more);
            let moved = before
                .iter()
                .zip(&grown)
                .filter(|((_, a), (_, b))| a != b)
                .count();
            for ((_, a), (_, b)) in before.iter().zip(&grown) {
                prop_assert!(a == b || b == "new", "a shard moved between old workers");
            }
            let share = f64::from(TOTAL) / (n as f64 + 1.0);
            prop_assert!(
                (moved as f64) < share * 2.0,
                "{} of {} moved when 1 joined {}", moved, TOTAL, n
            );
        }
    }
}
