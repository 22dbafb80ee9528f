//! Which live worker gets which pending shard. A pure function: state in, plan out.
//!
//! Rendezvous (highest-random-weight) hashing of the shard key over workers with free
//! slots: the same shard prefers the same worker, and a worker joining or leaving moves only
//! the shards that hash to it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

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

fn score(worker: &str, shard_key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    worker.hash(&mut h);
    shard_key.hash(&mut h);
    h.finish()
}

/// Assigns pending shards, in order, to candidates while they have free slots.
pub fn place(pending: &[PendingShard], candidates: &[Candidate]) -> Vec<(PendingShard, String)> {
    let mut free: Vec<(String, u32)> = candidates
        .iter()
        .filter(|c| c.free_slots > 0)
        .map(|c| (c.id.clone(), c.free_slots))
        .collect();
    let mut out = Vec::new();
    for p in pending {
        let key = format!("{}/{}", p.run_id, p.key);
        let best = free
            .iter_mut()
            .filter(|(_, slots)| *slots > 0)
            .max_by_key(|(id, _)| score(id, &key));
        let Some((id, slots)) = best else { break };
        *slots -= 1;
        out.push((p.clone(), id.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
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

    fn workers(ids: &[&str], slots: u32) -> Vec<Candidate> {
        ids.iter()
            .map(|id| Candidate {
                id: id.to_string(),
                free_slots: slots,
            })
            .collect()
    }

    #[test]
    fn never_exceeds_free_slots() {
        let plan = place(&shards(10), &workers(&["a", "b"], 3));
        assert_eq!(plan.len(), 6);
        for w in ["a", "b"] {
            assert!(plan.iter().filter(|(_, id)| id == w).count() <= 3);
        }
    }

    #[test]
    fn a_leaving_worker_moves_only_its_shards() {
        let before = place(&shards(60), &workers(&["a", "b", "c"], 100));
        let after = place(&shards(60), &workers(&["a", "b"], 100));
        for ((s1, w1), (s2, w2)) in before.iter().zip(after.iter()) {
            assert_eq!(s1, s2);
            if w1 != "c" {
                assert_eq!(w1, w2, "shard {} moved without cause", s1.key);
            }
        }
    }
}
