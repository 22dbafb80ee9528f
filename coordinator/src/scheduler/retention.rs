//! What the coordinator's state stops keeping: finished runs beyond the newest `keep` of each
//! pipeline, and workers not heard from for long. Pure functions; the scheduler proposes
//! their results as `PruneRuns` and `ForgetWorkers`.
//!
//! Only the coordinator's records go: the warehouse keeps the loaded rows, the checkpoints
//! and the dead letters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::liveness::Liveness;
use crate::state::model::State;

/// How often the leader looks for what to prune (a backlog larger than one entry takes
/// several rounds).
pub const EVERY: Duration = Duration::from_secs(1);

/// Run ids in one `PruneRuns` entry at most, so that a large backlog becomes several small
/// entries instead of one huge one.
pub const MAX_PER_ENTRY: usize = 256;

/// The finished runs of each pipeline beyond its newest `keep` (never a pipeline's last run),
/// oldest first, at most [`MAX_PER_ENTRY`].
pub fn runs_to_prune(state: &State, keep: usize) -> Vec<u64> {
    let keep = keep.max(1);
    let mut finished: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for run in state.runs.values().filter(|r| r.state.is_terminal()) {
        finished
            .entry(state.pipeline_key_of_run(run))
            .or_default()
            .push(run.id);
    }
    let mut out = Vec::new();
    for (pipeline, ids) in finished {
        // `runs` is ordered by id, so `ids` is oldest first.
        let last = state.pipelines.get(&pipeline).and_then(|p| p.last_run_id);
        let excess = ids.len().saturating_sub(keep);
        out.extend(ids.into_iter().take(excess).filter(|id| Some(*id) != last));
    }
    out.sort_unstable();
    out.truncate(MAX_PER_ENTRY);
    out
}

/// Registered workers without a lease that this leader has not heard from for `after`
/// (counted from the start of its term for a worker it never heard from).
pub fn workers_to_forget(
    state: &State,
    live: &Liveness,
    after: Duration,
    now: Instant,
) -> Vec<String> {
    let Some(since) = live.since else {
        return Vec::new();
    };
    let holding = state.leases_by_worker();
    state
        .workers
        .keys()
        .filter(|id| !holding.contains_key(*id))
        .filter(|id| {
            let last = live.workers.get(*id).map_or(since, |w| w.last_seen);
            now.saturating_duration_since(last) > after
        })
        .take(MAX_PER_ENTRY)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::command::{self, apply, Command, LeaseGrant};
    use apitap_common::shard::ShardDef;

    fn shard() -> ShardDef {
        ShardDef {
            index: 0,
            key: "all".into(),
            vars: Default::default(),
        }
    }

    /// A state with pipelines `a` and `b`, `runs` runs of `a` (all finished but the ones in
    /// `unfinished`) and one finished run of `b`.
    fn state_with(runs: u64, unfinished: &[u64]) -> State {
        let mut st = State::default();
        let mut index = 0;
        let mut step = |st: &mut State, cmd: Command| {
            index += 1;
            apply(st, index, &cmd)
        };
        for name in ["a", "b"] {
            step(
                &mut st,
                Command::PutPipeline(command::PutPipeline::for_test(name)),
            );
        }
        step(
            &mut st,
            Command::RegisterWorker(command::RegisterWorker {
                id: "w".into(),
                addr: String::new(),
                slots: 4,
                now_ms: 0,
                max_workers: 0,
            }),
        );
        let mut start = |st: &mut State, pipeline: &str| {
            step(
                st,
                Command::StartRun(command::StartRun {
                    pipeline: pipeline.into(),
                    shards: vec![shard()],
                    trace: None,
                    now_ms: 0,
                    failed: None,
                }),
            );
            let id = st.next_run_id;
            step(
                st,
                Command::GrantLeases(command::GrantLeases {
                    grants: vec![LeaseGrant {
                        run_id: id,
                        shard: 0,
                        worker: "w".into(),
                        trace: None,
                    }],
                    max_shards_per_namespace: 0,
                }),
            );
            id
        };
        let mut ids = Vec::new();
        for _ in 0..runs {
            ids.push(start(&mut st, "a"));
        }
        let b = start(&mut st, "b");
        for id in ids.into_iter().chain([b]) {
            if unfinished.contains(&id) {
                continue;
            }
            let fence = st.runs[&id].shards[0].fence;
            step(
                &mut st,
                Command::CompleteShard(command::CompleteShard {
                    run_id: id,
                    shard: 0,
                    fence,
                    ok: true,
                    retriable: true,
                    error: None,
                    pages: 1,
                    records: 1,
                    watermark: None,
                    dead_letters: 0,
                    dead_letter_sample: Vec::new(),
                    now_ms: 0,
                    worker: "w".into(),
                }),
            );
        }
        st
    }

    #[test]
    fn keeps_the_newest_finished_runs_of_each_pipeline() {
        let st = state_with(5, &[]);
        assert_eq!(runs_to_prune(&st, 2), [1, 2, 3]);
        assert_eq!(runs_to_prune(&st, 5), Vec::<u64>::new());
        // At least the last run stays, whatever `keep` says.
        assert_eq!(runs_to_prune(&st, 0), [1, 2, 3, 4]);
    }

    #[test]
    fn active_runs_are_neither_counted_nor_pruned() {
        let st = state_with(5, &[2, 5]);
        // Finished: 1, 3, 4; the last run (5) is active.
        assert_eq!(runs_to_prune(&st, 1), [1, 3]);
    }

    #[test]
    fn applying_a_prune_removes_runs_and_skips_the_protected_ones() {
        let mut st = state_with(4, &[3]);
        let (result, keys) = apply(
            &mut st,
            100,
            &Command::PruneRuns(command::PruneRuns {
                run_ids: vec![1, 3, 4, 99],
            }),
        );
        // 3 is active and 4 is the pipeline's last run: only 1 goes.
        assert_eq!(
            result,
            crate::state::command::CommandResult::Removed { count: 1 }
        );
        assert_eq!(keys, [crate::state::command::Key::RemovedRun(1, 1)]);
        assert!(!st.runs.contains_key(&1));
        assert!(st.runs.contains_key(&3) && st.runs.contains_key(&4));
    }

    #[test]
    fn retention_runs_at_most_once_per_period_and_at_once_in_a_new_term() {
        let t0 = Instant::now();
        let mut live = Liveness::default();
        live.reset(1, t0);
        assert!(live.retention_due(t0, EVERY));
        assert!(!live.retention_due(t0 + EVERY / 2, EVERY));
        assert!(live.retention_due(t0 + EVERY, EVERY));
        live.reset(2, t0 + EVERY);
        assert!(live.retention_due(t0 + EVERY, EVERY));
    }

    #[test]
    fn silent_workers_without_leases_are_forgotten() {
        let mut st = state_with(1, &[1]);
        for id in ["idle", "gone"] {
            apply(
                &mut st,
                200,
                &Command::RegisterWorker(command::RegisterWorker {
                    id: id.into(),
                    addr: String::new(),
                    slots: 1,
                    now_ms: 0,
                    max_workers: 0,
                }),
            );
        }
        let t0 = Instant::now();
        let mut live = Liveness::default();
        live.reset(1, t0);
        live.heartbeat("idle", "", 1, false, t0 + Duration::from_secs(50));
        let now = t0 + Duration::from_secs(61);
        // "w" holds run 1's lease; "idle" was heard 11 s ago; "gone" never since the term
        // started 61 s ago.
        assert_eq!(
            workers_to_forget(&st, &live, Duration::from_secs(60), now),
            ["gone"]
        );
        assert!(workers_to_forget(&st, &live, Duration::from_secs(70), now).is_empty());
        let (_, keys) = apply(
            &mut st,
            201,
            &Command::ForgetWorkers(command::ForgetWorkers {
                ids: vec!["gone".into(), "w".into()],
            }),
        );
        assert_eq!(keys, [crate::state::command::Key::Worker("gone".into())]);
        assert!(
            st.workers.contains_key("w"),
            "a worker holding a lease stays"
        );
    }
}
