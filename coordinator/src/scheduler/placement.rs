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
    use rand::{Rng, SeedableRng};

    use super::*;

    fn shards(n: u32) -> Vec<PendingShard> {
        (0..n)
            .map(|i| PendingShard {
                run_id: 1,
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

    #[test]
    fn never_exceeds_free_slots_and_places_while_capacity_lasts() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let ws: Vec<Candidate> = (0..rng.gen_range(0..6))
                .map(|i| Candidate {
                    id: format!("w{i}"),
                    free_slots: rng.gen_range(0..5),
                })
                .collect();
            let n = rng.gen_range(0..40);
            let plan = place(&shards(n), &ws);
            let capacity: u32 = ws.iter().map(|w| w.free_slots).sum();
            assert_eq!(plan.len() as u32, n.min(capacity));
            for w in &ws {
                let used = plan.iter().filter(|(_, id)| *id == w.id).count() as u32;
                assert!(
                    used <= w.free_slots,
                    "{} got {used} > {}",
                    w.id,
                    w.free_slots
                );
            }
        }
    }

    /// Property: with spare capacity, removing one of N workers moves only the shards it
    /// held, and adding one moves about 1/(N+1) of them to the newcomer only.
    #[test]
    fn membership_changes_move_only_their_share() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..50 {
            let n = rng.gen_range(2..8);
            let total = 400;
            let ws = workers(n, 1000);
            let before = place(&shards(total), &ws);

            let gone = format!("w{}", rng.gen_range(0..n));
            let fewer: Vec<Candidate> = ws.iter().filter(|w| w.id != gone).cloned().collect();
            let after = place(&shards(total), &fewer);
            for ((s, w1), (_, w2)) in before.iter().zip(&after) {
                if *w1 != gone {
                    assert_eq!(w1, w2, "shard {} moved without cause", s.key);
                }
            }

            let mut more = ws.clone();
            more.push(Candidate {
                id: "new".into(),
                free_slots: 1000,
            });
            let grown = place(&shards(total), &more);
            let moved = before
                .iter()
                .zip(&grown)
                .filter(|((_, a), (_, b))| a != b)
                .count();
            for ((_, a), (_, b)) in before.iter().zip(&grown) {
                assert!(a == b || b == "new", "a shard moved between old workers");
            }
            let share = total as f64 / (n as f64 + 1.0);
            assert!(
                (moved as f64) < share * 2.0,
                "{moved} of {total} moved when 1 joined {n}"
            );
        }
    }
}
