//! The leader's control loop. Each tick it reads the applied state and its soft state,
//! decides (pure functions), and proposes the resulting commands through Raft, each under
//! the spans of what it does (see [`crate::spans`]).

pub mod placement;
pub mod quota;
pub mod retention;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apitap_common::shutdown::ShutdownSignal;
use apitap_common::trace_context;
use tracing::{Instrument, Span};

// Timed and counted in the node's metrics (lease grants and expiries).
use crate::node::Node;
use crate::spans::{self, Trigger};
use crate::state::command::{self, Command, LeaseGrant};
use crate::state::model::ShardState;
use placement::Candidate;

const TICK: Duration = Duration::from_millis(100);

pub async fn run(node: Arc<Node>, mut shutdown: ShutdownSignal) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = interval.tick() => {}
        }
        if !node.is_leader() {
            continue;
        }
        let mut planned = plan(&node, Instant::now()).into_iter();
        while let Some(Planned { cmd, spans }) = planned.next() {
            // A command covering several spans (a tick's grants) runs under none of them.
            let current = match spans.as_slice() {
                [one] => one.clone(),
                _ => Span::none(),
            };
            match node.propose_observed(cmd).instrument(current).await {
                Ok(result) => spans.iter().for_each(|s| spans::record_result(s, &result)),
                Err(e) => {
                    tracing::debug!(error = %e, "scheduler proposal failed");
                    spans.iter().for_each(|s| spans::record_failure(s, &e));
                    let skipped = format!("not proposed: an earlier proposal failed: {e}");
                    for rest in planned.by_ref() {
                        rest.spans
                            .iter()
                            .for_each(|s| spans::record_failure(s, &skipped));
                    }
                    break;
                }
            }
        }
    }
}

/// A command to propose, and the spans it ends (recorded with its result when committed).
struct Planned {
    cmd: Command,
    spans: Vec<Span>,
}

impl From<Command> for Planned {
    fn from(cmd: Command) -> Self {
        Planned {
            cmd,
            spans: Vec::new(),
        }
    }
}

/// What the leader should propose now.
fn plan(node: &Node, now: Instant) -> Vec<Planned> {
    let ttl = node.config.lease_ttl;
    let placement_window = (node.config.worker_heartbeat * 3).min(ttl);
    let term = node.raft.metrics().borrow().current_term;
    let guard = node.state();
    let state = &guard.state;
    let mut live = node.liveness();
    if live.term != Some(term) {
        live.reset(term, now);
    }
    let mut cmds = Vec::new();
    let now_ms = apitap_common::time::now_ms();

    // Expire leases whose holder stopped renewing them; a new term grants a full TTL first.
    let mut held = std::collections::HashMap::<String, u32>::new();
    for run in state.active_runs() {
        for s in run.shards.iter().filter(|s| s.state == ShardState::Leased) {
            let id = (run.id, s.def.index, s.fence);
            let deadline = *live.deadlines.entry(id).or_insert(now + ttl);
            if now > deadline {
                tracing::info!(run_id = run.id, shard = s.def.index, fence = s.fence, worker = ?s.worker, "lease expired");
                cmds.push(Planned {
                    cmd: Command::ExpireLease(command::ExpireLease {
                        run_id: run.id,
                        shard: s.def.index,
                        fence: s.fence,
                    }),
                    spans: vec![spans::expire_lease(run, s)],
                });
            } else if let Some(w) = &s.worker {
                *held.entry(w.clone()).or_default() += 1;
            }
        }
    }
    live.deadlines.retain(|(run_id, shard, fence), _| {
        state.runs.get(run_id).is_some_and(|r| {
            r.shards.iter().any(|s| {
                s.def.index == *shard && s.fence == *fence && s.state == ShardState::Leased
            })
        })
    });

    // Grant pending shards to live workers with free slots.
    let mut candidates: Vec<Candidate> = live
        .workers
        .iter()
        // Only workers heard from recently: one whose heartbeats stopped must not be
        // handed the very leases that just expired on it.
        .filter(|(id, w)| !w.draining && live.is_live(id, placement_window, now))
        .filter_map(|(id, _)| {
            let slots = state.workers.get(id)?.slots;
            let used = held.get(id).copied().unwrap_or(0);
            Some(Candidate {
                id: id.clone(),
                free_slots: slots.saturating_sub(used),
            })
        })
        .collect();
    candidates.sort_by(|a, b| a.id.cmp(&b.id));
    let quota = node.config.max_shards_per_namespace;
    let (pending, deferred) = quota::pending_within(state, quota, now_ms);
    if deferred > 0 {
        node.metrics.quota_deferred_shards.add(deferred as u64);
    }
    let mut grant_spans = Vec::new();
    let grants: Vec<LeaseGrant> = placement::place(&pending, &candidates)
        .into_iter()
        .map(|(p, worker)| {
            let span = state
                .runs
                .get(&p.run_id)
                .map_or_else(Span::none, |run| spans::grant_lease(run, p.shard, &worker));
            let trace = trace_context::traceparent(&span);
            grant_spans.push(span);
            LeaseGrant {
                run_id: p.run_id,
                shard: p.shard,
                worker,
                trace,
            }
        })
        .collect();
    if !grants.is_empty() {
        cmds.push(Planned {
            cmd: Command::GrantLeases(command::GrantLeases {
                grants,
                max_shards_per_namespace: quota,
            }),
            spans: grant_spans,
        });
    }

    // Retention: old finished runs, long-silent workers. Both scan every run, so once per
    // `retention::EVERY`, not every tick.
    if live.retention_due(now, retention::EVERY) {
        let run_ids = retention::runs_to_prune(state, node.config.keep_runs as usize);
        if !run_ids.is_empty() {
            cmds.push(Command::PruneRuns(command::PruneRuns { run_ids }).into());
        }
        let after = node.config.forget_workers_after;
        let ids = retention::workers_to_forget(state, &live, after, now);
        if !ids.is_empty() {
            tracing::info!(workers = ?ids, ?after, "forgetting silent workers");
            cmds.push(Command::ForgetWorkers(command::ForgetWorkers { ids }).into());
        }
    }

    // Fire schedules that are due, unless the previous run is still going (no overlap).
    for p in state.pipelines.values() {
        let last = p.last_run_id.and_then(|id| state.runs.get(&id));
        if last.is_some_and(|r| !r.state.is_terminal()) {
            continue;
        }
        let trigger = if p.cron.is_some() {
            Trigger::Cron
        } else {
            Trigger::Every
        };
        let due = match (&p.cron, p.every_ms) {
            (Some(expr), _) => {
                let since = last.map_or(p.updated_at_ms, |r| r.created_at_ms.max(p.updated_at_ms));
                apitap_common::cron::Cron::parse(expr)
                    .ok()
                    .and_then(|c| c.next_after((since / 1000) as i64))
                    .is_some_and(|next| next * 1000 <= now_ms as i64)
            }
            (None, Some(every)) => last.is_none_or(|r| r.created_at_ms + every <= now_ms),
            (None, None) => false,
        };
        if due {
            let shards = apitap_common::spec::load(&p.name, &p.spec_yaml, None)
                .ok()
                .map(|spec| apitap_common::shard::expand(&spec.spec));
            match shards {
                Some(Ok(shards)) => {
                    let span = spans::start_run(&p.name, trigger);
                    cmds.push(Planned {
                        cmd: Command::StartRun(command::StartRun {
                            pipeline: p.key(),
                            shards,
                            trace: trace_context::traceparent(&span),
                            now_ms,
                        }),
                        spans: vec![span],
                    });
                }
                // TODO(limits): mark the pipeline failed (a state command) instead of
                // skipping it on every tick; only specs stored before the limit can get here.
                Some(Err(e)) => {
                    tracing::warn!(pipeline = %p.name, error = %e, "schedule skipped: shards over a limit")
                }
                None => {}
            }
        }
    }
    cmds
}
