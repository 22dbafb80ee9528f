//! The leader elections a node observed: a bounded ring of (term, leader, when), fed by the
//! admin server's watch of the Raft metrics (`api::exposition::watch_leader`).

use std::collections::VecDeque;
use std::sync::Mutex;

use apitap_proto::v1::ElectionInfo;

/// Default of `--history-elections`: elections the cluster page lists.
pub const DEFAULT_ELECTIONS: usize = 20;

/// The newest elections, newest first.
#[derive(Debug)]
pub struct Elections {
    ring: Mutex<VecDeque<ElectionInfo>>,
    max: usize,
}

impl Elections {
    pub fn new(max: usize) -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(max.min(1024))),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ElectionInfo>> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that this node saw `term` with `leader` (None: none known yet) at `now_ms`.
    /// A term is one entry: its leader is filled in once known; an older term is ignored.
    pub fn observe(&self, term: u64, leader: Option<u64>, now_ms: u64) {
        let mut ring = self.lock();
        match ring.front_mut() {
            Some(e) if e.term == term => {
                if e.leader_id == 0 {
                    e.leader_id = leader.unwrap_or(0);
                }
                return;
            }
            Some(e) if e.term > term => return,
            _ => {}
        }
        ring.push_front(ElectionInfo {
            term,
            leader_id: leader.unwrap_or(0),
            at_ms: now_ms,
        });
        ring.truncate(self.max);
    }

    /// The elections, newest first.
    pub fn recent(&self) -> Vec<ElectionInfo> {
        self.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_term_newest_first_and_bounded() {
        let e = Elections::new(3);
        e.observe(1, None, 10);
        e.observe(1, Some(2), 11);
        e.observe(1, Some(3), 12);
        assert_eq!(
            e.recent(),
            [ElectionInfo {
                term: 1,
                leader_id: 2,
                at_ms: 10
            }],
            "a term's leader is set once, when first known"
        );
        for t in 2..=6 {
            e.observe(t, Some(t), t * 100);
        }
        e.observe(4, Some(9), 999);
        let terms: Vec<u64> = e.recent().iter().map(|x| x.term).collect();
        assert_eq!(terms, [6, 5, 4], "newest first, at most the bound");
    }
}
