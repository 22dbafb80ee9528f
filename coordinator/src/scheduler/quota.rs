//! The per-namespace concurrent-shard quota (`--max-shards-per-namespace`): which pending
//! shards may be placed this tick. A pure function; `GrantLeases::apply` enforces the same
//! quota again, deterministically, so a plan made from a stale view cannot exceed it.

use crate::state::model::{ShardState, State};

use super::placement::PendingShard;

/// The shards due for placement (oldest run first), at most `quota` leased per namespace
/// counting those already leased, and how many due shards the quota held back.
pub fn pending_within(state: &State, quota: u32, now_ms: u64) -> (Vec<PendingShard>, usize) {
    let mut leased = state.leased_by_namespace();
    let (mut pending, mut deferred) = (Vec::new(), 0);
    for run in state.active_runs() {
        let held = leased
            .entry(state.namespace_of_run(run).to_string())
            .or_default();
        for s in run
            .shards
            .iter()
            .filter(|s| s.state == ShardState::Pending && s.not_before_ms <= now_ms)
        {
            if *held >= quota {
                deferred += 1;
                continue;
            }
            *held += 1;
            pending.push(PendingShard {
                run_id: run.id,
                shard: s.def.index,
                key: s.def.key.clone(),
            });
        }
    }
    (pending, deferred)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::command::{self, apply, Command, LeaseGrant};

    fn step(state: &mut State, cmd: Command) {
        let index = state.next_run_id + 100;
        apply(state, index, &cmd);
    }

    /// A state with one run of `shards` shards in each of `namespaces`.
    fn runs(namespaces: &[&str], shards: u32) -> State {
        let mut st = State::default();
        for ns in namespaces {
            let defs = crate::state::apply::test_shards(shards);
            step(
                &mut st,
                Command::PutPipeline(command::PutPipeline {
                    namespace: (*ns).into(),
                    start_run: Some(defs),
                    ..command::PutPipeline::for_test("p")
                }),
            );
        }
        step(
            &mut st,
            Command::RegisterWorker(command::RegisterWorker {
                id: "w".into(),
                addr: String::new(),
                slots: 64,
                now_ms: 0,
                max_workers: 0,
            }),
        );
        st
    }

    fn grant(st: &mut State, pending: &[PendingShard], quota: u32) {
        let grants = pending
            .iter()
            .map(|p| LeaseGrant {
                run_id: p.run_id,
                shard: p.shard,
                worker: "w".into(),
                trace: None,
            })
            .collect();
        step(
            st,
            Command::GrantLeases(command::GrantLeases {
                grants,
                max_shards_per_namespace: quota,
            }),
        );
    }

    #[test]
    fn a_namespace_at_its_quota_waits_while_others_are_placed() {
        let mut st = runs(&["a", "b"], 5);
        let (pending, deferred) = pending_within(&st, 3, 0);
        assert_eq!((pending.len(), deferred), (6, 4), "3 of a, 3 of b");
        grant(&mut st, &pending, 3);
        assert_eq!(
            st.leased_by_namespace(),
            BTreeMap::from([("a".into(), 3), ("b".into(), 3)])
        );
        // Leased shards count: nothing more goes out until some finish.
        let (pending, deferred) = pending_within(&st, 3, 0);
        assert_eq!((pending.len(), deferred), (0, 4));
    }

    #[test]
    fn apply_enforces_the_quota_whatever_the_plan_proposed() {
        let mut st = runs(&["a"], 5);
        let (all, _) = pending_within(&st, u32::MAX, 0);
        assert_eq!(all.len(), 5);
        grant(&mut st, &all, 2);
        assert_eq!(st.leased_by_namespace()["a"], 2);
        // Entries written before the quota (0) apply without one.
        let (rest, _) = pending_within(&st, u32::MAX, 0);
        grant(&mut st, &rest, 0);
        assert_eq!(st.leased_by_namespace()["a"], 5);
    }
}
