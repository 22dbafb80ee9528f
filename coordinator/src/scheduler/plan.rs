//! What the leader proposes in one tick, decided from the applied state, the leader's soft
//! state and the settings alone: lease expiries, lease grants, retention and schedules.
//! No I/O and no clock reads (the caller passes `now`), so a tick can be replayed in a test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use apitap_common::trace_context;
use tracing::Span;

use super::placement::{self, Candidate};
use super::{quota, retention};
use crate::config::Config;
use crate::liveness::Liveness;
use crate::spans::{self, Trigger};
use crate::state::command::{self, Command, LeaseGrant};
use crate::state::model::{PipelineRecord, ShardState, State};

/// A command to propose, and the spans it ends (recorded with its result when committed).
pub struct Planned {
    pub cmd: Command,
    pub spans: Vec<Span>,
}

impl From<Command> for Planned {
    fn from(cmd: Command) -> Self {
        Planned {
            cmd,
            spans: Vec::new(),
        }
    }
}

/// The settings a plan depends on.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    pub lease_ttl: Duration,
    pub worker_heartbeat: Duration,
    pub max_shards_per_namespace: u32,
    pub keep_runs: usize,
    pub forget_workers_after: Duration,
}

impl From<&Config> for PlanConfig {
    fn from(c: &Config) -> Self {
        Self {
            lease_ttl: c.lease_ttl,
            worker_heartbeat: c.worker_heartbeat,
            max_shards_per_namespace: c.max_shards_per_namespace,
            keep_runs: c.keep_runs as usize,
            forget_workers_after: c.forget_workers_after,
        }
    }
}

/// One tick's decisions.
pub struct Plan {
    /// In the order to propose them.
    pub cmds: Vec<Planned>,
    /// Due shards the per-namespace concurrent-shard quota held back.
    pub quota_deferred: usize,
}

/// What the leader of `term` should propose at `now` (`now_ms` on the wall clock).
pub fn plan(
    state: &State,
    live: &mut Liveness,
    config: &PlanConfig,
    term: u64,
    now: Instant,
    now_ms: u64,
) -> Plan {
    if live.term != Some(term) {
        live.reset(term, now);
    }
    let mut cmds = Vec::new();
    let held = expire_leases(state, live, config.lease_ttl, now, &mut cmds);
    let quota_deferred = grant_leases(state, live, config, &held, now, now_ms, &mut cmds);
    prune(state, live, config, now, &mut cmds);
    for p in state.pipelines.values() {
        if let Some(planned) = schedule(state, p, now_ms) {
            cmds.push(planned);
        }
    }
    Plan {
        cmds,
        quota_deferred,
    }
}

/// Expires leases whose holder stopped renewing them (a new term grants a full TTL first);
/// returns the leases each worker still holds.
fn expire_leases(
    state: &State,
    live: &mut Liveness,
    ttl: Duration,
    now: Instant,
    cmds: &mut Vec<Planned>,
) -> HashMap<String, u32> {
    let mut held = HashMap::<String, u32>::new();
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
    held
}

/// Grants pending shards to live workers with free slots, within the namespaces' quota;
/// returns how many due shards the quota held back.
fn grant_leases(
    state: &State,
    live: &Liveness,
    config: &PlanConfig,
    held: &HashMap<String, u32>,
    now: Instant,
    now_ms: u64,
    cmds: &mut Vec<Planned>,
) -> usize {
    let placement_window = (config.worker_heartbeat * 3).min(config.lease_ttl);
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
    let quota = config.max_shards_per_namespace;
    let (pending, deferred) = quota::pending_within(state, quota, now_ms);
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
    deferred
}

/// Retention: old finished runs, long-silent workers. Both scan every run, so once per
/// `retention::EVERY`, not every tick.
fn prune(
    state: &State,
    live: &mut Liveness,
    config: &PlanConfig,
    now: Instant,
    cmds: &mut Vec<Planned>,
) {
    if !live.retention_due(now, retention::EVERY) {
        return;
    }
    let run_ids = retention::runs_to_prune(state, config.keep_runs);
    if !run_ids.is_empty() {
        cmds.push(Command::PruneRuns(command::PruneRuns { run_ids }).into());
    }
    let after = config.forget_workers_after;
    let ids = retention::workers_to_forget(state, live, after, now);
    if !ids.is_empty() {
        tracing::info!(workers = ?ids, ?after, "forgetting silent workers");
        cmds.push(Command::ForgetWorkers(command::ForgetWorkers { ids }).into());
    }
}

/// When the schedule of `p` next starts a run (Unix ms; 0: as soon as the scheduler looks),
/// or `None` for a pipeline without a schedule. A run still going when that time comes
/// delays the next one until it ends (no overlap).
pub fn next_run_ms(state: &State, p: &PipelineRecord) -> Option<u64> {
    let last = p.last_run_id.and_then(|id| state.runs.get(&id));
    match (&p.cron, p.every_ms) {
        (Some(expr), _) => {
            let since = last.map_or(p.updated_at_ms, |r| r.created_at_ms.max(p.updated_at_ms));
            apitap_common::cron::next_fire(expr, (since / 1000) as i64)
                .map(|next| u64::try_from(next).unwrap_or(0).saturating_mul(1000))
        }
        (None, Some(every)) => Some(last.map_or(0, |r| r.created_at_ms.saturating_add(every))),
        (None, None) => None,
    }
}

/// A run of `p` if its schedule is due, unless its previous run is still going (no overlap).
fn schedule(state: &State, p: &PipelineRecord, now_ms: u64) -> Option<Planned> {
    let last = p.last_run_id.and_then(|id| state.runs.get(&id));
    if last.is_some_and(|r| !r.state.is_terminal()) {
        return None;
    }
    let trigger = if p.cron.is_some() {
        Trigger::Cron
    } else {
        Trigger::Every
    };
    let due = next_run_ms(state, p).is_some_and(|next| next <= now_ms);
    if !due {
        return None;
    }
    let planned = apitap_common::spec::load(&p.name, &p.spec_yaml, None)
        .map_err(|e| e.to_string())
        .and_then(|spec| apitap_common::shard::expand(&spec.spec).map_err(|e| e.to_string()));
    let (shards, failed) = match planned {
        Ok(shards) => (shards, None),
        // Only specs stored before a limit existed can get here: the run is recorded as
        // failed with the reason, and the schedule tries again at its next time.
        Err(e) => {
            tracing::warn!(pipeline = %p.key(), error = %e, "scheduled run failed: shards over a limit");
            (
                Vec::new(),
                Some(format!("the run could not be planned: {e}")),
            )
        }
    };
    let span = spans::start_run(&p.name, trigger);
    Some(Planned {
        cmd: Command::StartRun(command::StartRun {
            pipeline: p.key(),
            shards,
            trace: trace_context::traceparent(&span),
            now_ms,
            failed,
        }),
        spans: vec![span],
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
