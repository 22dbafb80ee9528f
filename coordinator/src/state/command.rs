//! Commands of the replicated log and their deterministic application.

use std::collections::BTreeMap;

use apitap_common::shard::ShardDef;
use serde::{Deserialize, Serialize};

use super::model::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Create or update a pipeline; optionally start a run of it.
    PutPipeline {
        name: String,
        spec_yaml: String,
        secrets: BTreeMap<String, String>,
        every_ms: Option<u64>,
        #[serde(default)]
        cron: Option<String>,
        max_attempts: u32,
        source_url: String,
        sink: String,
        /// Incremental loads: the first run's watermark.
        #[serde(default)]
        initial_watermark: Option<String>,
        /// The pipeline's `rate_limit`: (key, requests per second, burst).
        #[serde(default)]
        rate_limit: Option<(String, f64, u32)>,
        start_run: Option<Vec<ShardDef>>,
        /// The started run's trace parent (see [`Run::trace`]).
        #[serde(default)]
        trace: Option<String>,
        now_ms: u64,
    },
    DeletePipeline {
        name: String,
        now_ms: u64,
    },
    StartRun {
        pipeline: String,
        shards: Vec<ShardDef>,
        /// The run's trace parent (see [`Run::trace`]).
        #[serde(default)]
        trace: Option<String>,
        now_ms: u64,
    },
    /// Stop an active run; leased shards are revoked at the holders' next heartbeat.
    CancelRun {
        run_id: u64,
        now_ms: u64,
    },
    /// Put a finished run's failed and cancelled shards back to pending.
    RetryRun {
        run_id: u64,
        now_ms: u64,
    },
    SetRateLimit {
        key: String,
        rps: f64,
        burst: u32,
    },
    /// Nobody calls `key` before `until_ms` (only ever extends).
    Backoff {
        key: String,
        until_ms: u64,
    },
    RegisterWorker {
        id: String,
        addr: String,
        slots: u32,
        now_ms: u64,
    },
    /// Grant pending shards to workers, in one entry per scheduler tick; each lease's
    /// fence is this entry's log index (unique per shard, and growing across its leases).
    GrantLeases {
        grants: Vec<LeaseGrant>,
    },
    /// The holder missed its heartbeats for a TTL.
    ExpireLease {
        run_id: u64,
        shard: u32,
        fence: u64,
    },
    /// The holder gave the lease back (drain).
    ReleaseLease {
        run_id: u64,
        shard: u32,
        fence: u64,
        checkpoint: Option<String>,
    },
    Checkpoint {
        run_id: u64,
        shard: u32,
        fence: u64,
        checkpoint: String,
        pages: u64,
        records: u64,
    },
    CompleteShard {
        run_id: u64,
        shard: u32,
        fence: u64,
        ok: bool,
        /// False for errors retrying cannot fix (the user's).
        retriable: bool,
        error: Option<String>,
        pages: u64,
        records: u64,
        /// Incremental loads: the largest cursor value this shard committed.
        #[serde(default)]
        watermark: Option<String>,
        now_ms: u64,
    },
    /// Delete these finished runs and their shards (retention). A run that is not finished,
    /// or is its pipeline's last run, is kept.
    PruneRuns {
        run_ids: Vec<u64>,
    },
    /// Forget these workers (not heard from for long). One holding a lease is kept; a
    /// forgotten worker that comes back registers again.
    ForgetWorkers {
        ids: Vec<String>,
    },
}

/// One shard for one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub run_id: u64,
    pub shard: u32,
    pub worker: String,
    /// The grant span's `traceparent`, handed to the worker with the lease.
    #[serde(default)]
    pub trace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandResult {
    Done,
    PipelineStored {
        version: u64,
        created: bool,
        run_id: Option<u64>,
    },
    RunStarted {
        run_id: u64,
    },
    Granted {
        fence: u64,
        /// How many of the grants applied (a shard no longer pending is skipped).
        granted: u32,
    },
    PipelineDeleted {
        runs_cancelled: u32,
    },
    /// How many records a retention command removed.
    Removed {
        count: u32,
    },
    Rejected {
        reason: String,
    },
}

/// A record changed by a command; the state machine persists exactly these. `Run` stands
/// for the run with all of its shards.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Pipeline(String),
    Run(u64),
    Worker(String),
    RateLimit(String),
    /// One shard of a run (and the run's own fields), by shard position.
    Shard(u64, usize),
    /// A deleted run and how many shards it had (their records are deleted too).
    RemovedRun(u64, usize),
}

fn rejected(reason: impl Into<String>) -> CommandResult {
    CommandResult::Rejected {
        reason: reason.into(),
    }
}

/// Applies `cmd`, committed at `log_index`, and returns its result and the records it touched.
pub fn apply(state: &mut State, log_index: u64, cmd: &Command) -> (CommandResult, Vec<Key>) {
    match cmd {
        Command::PutPipeline {
            name,
            spec_yaml,
            secrets,
            every_ms,
            cron,
            max_attempts,
            source_url,
            sink,
            initial_watermark,
            rate_limit,
            start_run,
            trace,
            now_ms,
        } => {
            let mut keys = vec![Key::Pipeline(name.clone())];
            if let Some((key, rps, burst)) = rate_limit {
                set_limit(state, key, *rps, *burst);
                keys.push(Key::RateLimit(key.clone()));
            }
            let created = !state.pipelines.contains_key(name);
            let record = state
                .pipelines
                .entry(name.clone())
                .or_insert_with(|| PipelineRecord {
                    name: name.clone(),
                    version: 0,
                    spec_yaml: String::new(),
                    secrets: BTreeMap::new(),
                    created_at_ms: *now_ms,
                    updated_at_ms: *now_ms,
                    every_ms: None,
                    cron: None,
                    max_attempts: 1,
                    last_run_id: None,
                    source_url: String::new(),
                    sink: String::new(),
                    watermarks: BTreeMap::new(),
                    initial_watermark: None,
                });
            if record.spec_yaml != *spec_yaml || record.secrets != *secrets {
                record.version += 1;
                record.updated_at_ms = *now_ms;
            }
            record.spec_yaml = spec_yaml.clone();
            record.secrets = secrets.clone();
            record.every_ms = *every_ms;
            record.cron = cron.clone();
            record.max_attempts = *max_attempts;
            record.source_url = source_url.clone();
            record.sink = sink.clone();
            if record.initial_watermark.is_none() || initial_watermark.is_none() {
                record.watermarks.clear();
            }
            record.initial_watermark = initial_watermark.clone();
            let version = record.version;
            let run_id = start_run
                .as_ref()
                .map(|shards| start(state, name, shards, trace, *now_ms, &mut keys));
            (
                CommandResult::PipelineStored {
                    version,
                    created,
                    run_id,
                },
                keys,
            )
        }
        Command::DeletePipeline { name, now_ms } => {
            if state.pipelines.remove(name).is_none() {
                return (rejected(format!("pipeline {name} not found")), vec![]);
            }
            let mut keys = vec![Key::Pipeline(name.clone())];
            let mut cancelled = 0;
            for run in state.runs.values_mut().filter(|r| r.pipeline == *name) {
                if !run.state.is_terminal() {
                    cancel(run, *now_ms);
                    cancelled += 1;
                    keys.push(Key::Run(run.id));
                }
            }
            (
                CommandResult::PipelineDeleted {
                    runs_cancelled: cancelled,
                },
                keys,
            )
        }
        Command::StartRun {
            pipeline,
            shards,
            trace,
            now_ms,
        } => {
            if !state.pipelines.contains_key(pipeline) {
                return (rejected(format!("pipeline {pipeline} not found")), vec![]);
            }
            let mut keys = vec![Key::Pipeline(pipeline.clone())];
            let run_id = start(state, pipeline, shards, trace, *now_ms, &mut keys);
            (CommandResult::RunStarted { run_id }, keys)
        }
        Command::SetRateLimit { key, rps, burst } => {
            set_limit(state, key, *rps, *burst);
            (CommandResult::Done, vec![Key::RateLimit(key.clone())])
        }
        Command::Backoff { key, until_ms } => {
            let Some(l) = state.rate_limits.get_mut(key) else {
                return (rejected(format!("no rate limit for {key}")), vec![]);
            };
            l.backoff_until_ms = l.backoff_until_ms.max(*until_ms);
            (CommandResult::Done, vec![Key::RateLimit(key.clone())])
        }
        Command::CancelRun { run_id, now_ms } => {
            let Some(run) = state.runs.get_mut(run_id) else {
                return (rejected(format!("run {run_id} not found")), vec![]);
            };
            if run.state.is_terminal() {
                return (
                    rejected(format!("run {run_id} already {}", run.state.as_str())),
                    vec![],
                );
            }
            cancel(run, *now_ms);
            (CommandResult::Done, vec![Key::Run(*run_id)])
        }
        Command::RetryRun { run_id, .. } => {
            let Some(run) = state.runs.get_mut(run_id) else {
                return (rejected(format!("run {run_id} not found")), vec![]);
            };
            if !run.state.is_terminal() {
                return (
                    rejected(format!("run {run_id} is still {}", run.state.as_str())),
                    vec![],
                );
            }
            let mut again = 0;
            for s in run
                .shards
                .iter_mut()
                .filter(|s| matches!(s.state, ShardState::Failed | ShardState::Cancelled))
            {
                s.state = ShardState::Pending;
                s.failures = 0;
                s.not_before_ms = 0;
                s.error = None;
                again += 1;
            }
            if again == 0 {
                return (
                    rejected(format!("run {run_id} has no failed or cancelled shard")),
                    vec![],
                );
            }
            run.state = RunState::Pending;
            run.finished_at_ms = None;
            run.error = None;
            (CommandResult::Done, vec![Key::Run(*run_id)])
        }
        Command::RegisterWorker {
            id,
            addr,
            slots,
            now_ms,
        } => {
            state.workers.insert(
                id.clone(),
                WorkerRecord {
                    id: id.clone(),
                    addr: addr.clone(),
                    slots: *slots,
                    registered_at_ms: *now_ms,
                },
            );
            (CommandResult::Done, vec![Key::Worker(id.clone())])
        }
        Command::GrantLeases { grants } => {
            let mut keys = Vec::new();
            for g in grants {
                let Some((run, i)) = shard_mut(state, g.run_id, g.shard) else {
                    continue;
                };
                let terminal = run.state.is_terminal();
                let s = &mut run.shards[i];
                if terminal || s.state != ShardState::Pending {
                    continue;
                }
                s.state = ShardState::Leased;
                s.worker = Some(g.worker.clone());
                s.fence = log_index;
                s.trace = g.trace.clone();
                s.attempts += 1;
                run.state = RunState::Running;
                keys.push(Key::Shard(g.run_id, i));
            }
            let granted = keys.len() as u32;
            keys.dedup();
            (
                CommandResult::Granted {
                    fence: log_index,
                    granted,
                },
                keys,
            )
        }
        Command::ExpireLease {
            run_id,
            shard,
            fence,
        }
        | Command::ReleaseLease {
            run_id,
            shard,
            fence,
            ..
        } => {
            let Some((run, i)) = current_lease(state, *run_id, *shard, *fence) else {
                return (rejected("lease is not current"), vec![]);
            };
            let s = &mut run.shards[i];
            s.state = ShardState::Pending;
            if let Command::ReleaseLease {
                checkpoint: Some(cp),
                ..
            } = cmd
            {
                s.checkpoint = Some(cp.clone());
            }
            (CommandResult::Done, vec![Key::Shard(*run_id, i)])
        }
        Command::Checkpoint {
            run_id,
            shard,
            fence,
            checkpoint,
            pages,
            records,
        } => {
            let Some((run, i)) = current_lease(state, *run_id, *shard, *fence) else {
                return (rejected("lease is not current"), vec![]);
            };
            let s = &mut run.shards[i];
            s.checkpoint = Some(checkpoint.clone());
            s.pages = *pages;
            s.records = *records;
            (CommandResult::Done, vec![Key::Shard(*run_id, i)])
        }
        Command::CompleteShard {
            run_id,
            shard,
            fence,
            ok,
            retriable,
            error,
            pages,
            records,
            watermark,
            now_ms,
        } => {
            let Some((run, i)) = current_lease(state, *run_id, *shard, *fence) else {
                return (rejected("lease is not current"), vec![]);
            };
            let max_attempts = run.max_attempts;
            let s = &mut run.shards[i];
            s.pages = *pages;
            s.records = *records;
            s.error = error.clone();
            if *ok {
                s.state = ShardState::Succeeded;
            } else {
                s.failures += 1;
                if *retriable && s.failures < max_attempts {
                    s.state = ShardState::Pending;
                    s.not_before_ms = now_ms + retry_delay_ms(s.failures);
                } else {
                    s.state = ShardState::Failed;
                }
            }
            let advanced =
                (*ok && watermark.is_some()).then(|| (run.pipeline.clone(), s.def.key.clone()));
            finish_if_done(run, *now_ms);
            let mut keys = vec![Key::Shard(*run_id, i)];
            if let (Some((pipeline, shard_key)), Some(w)) = (advanced, watermark) {
                if let Some(p) = state.pipelines.get_mut(&pipeline) {
                    p.watermarks.insert(shard_key, w.clone());
                    keys.push(Key::Pipeline(pipeline));
                }
            }
            (CommandResult::Done, keys)
        }
        Command::PruneRuns { run_ids } => {
            let mut keys = Vec::new();
            for id in run_ids {
                let Some(run) = state.runs.get(id) else {
                    continue;
                };
                let last = state
                    .pipelines
                    .get(&run.pipeline)
                    .and_then(|p| p.last_run_id);
                if !run.state.is_terminal() || last == Some(*id) {
                    continue;
                }
                keys.push(Key::RemovedRun(*id, run.shards.len()));
                state.runs.remove(id);
            }
            let count = keys.len() as u32;
            (CommandResult::Removed { count }, keys)
        }
        Command::ForgetWorkers { ids } => {
            let holding = state.leases_by_worker();
            let mut keys = Vec::new();
            for id in ids {
                if !holding.contains_key(id) && state.workers.remove(id).is_some() {
                    keys.push(Key::Worker(id.clone()));
                }
            }
            let count = keys.len() as u32;
            (CommandResult::Removed { count }, keys)
        }
    }
}

/// Back-off before a failed shard is granted again.
fn retry_delay_ms(failures: u32) -> u64 {
    (1000u64 << failures.min(6)).min(60_000)
}

fn start(
    state: &mut State,
    pipeline: &str,
    shards: &[ShardDef],
    trace: &Option<String>,
    now_ms: u64,
    keys: &mut Vec<Key>,
) -> u64 {
    state.next_run_id += 1;
    let id = state.next_run_id;
    let p = state
        .pipelines
        .get_mut(pipeline)
        .expect("caller checked the pipeline");
    p.last_run_id = Some(id);
    let shards: Vec<Shard> = shards
        .iter()
        .cloned()
        .map(|mut def| {
            if let Some(initial) = &p.initial_watermark {
                let w = p.watermarks.get(&def.key).unwrap_or(initial);
                def.vars.insert("watermark".into(), w.clone());
            }
            Shard::new(def)
        })
        .collect();
    state.runs.insert(
        id,
        Run {
            id,
            pipeline: pipeline.to_string(),
            pipeline_version: p.version,
            spec_yaml: p.spec_yaml.clone(),
            max_attempts: p.max_attempts,
            state: RunState::Pending,
            created_at_ms: now_ms,
            finished_at_ms: None,
            shards,
            error: None,
            trace: trace.clone(),
        },
    );
    keys.push(Key::Run(id));
    id
}

fn cancel(run: &mut Run, now_ms: u64) {
    for s in run.shards.iter_mut().filter(|s| !s.state.is_terminal()) {
        s.state = ShardState::Cancelled;
    }
    run.state = RunState::Cancelled;
    run.finished_at_ms = Some(now_ms);
}

fn finish_if_done(run: &mut Run, now_ms: u64) {
    if !run.shards.iter().all(|s| s.state.is_terminal()) {
        return;
    }
    let failed: Vec<_> = run
        .shards
        .iter()
        .filter(|s| s.state == ShardState::Failed)
        .collect();
    if failed.is_empty() {
        run.state = RunState::Succeeded;
    } else {
        run.state = RunState::Failed;
        run.error = Some(format!(
            "{} of {} shards failed; first error: {}",
            failed.len(),
            run.shards.len(),
            failed[0].error.clone().unwrap_or_default()
        ));
    }
    run.finished_at_ms = Some(now_ms);
}

fn shard_mut(state: &mut State, run_id: u64, shard: u32) -> Option<(&mut Run, usize)> {
    let run = state.runs.get_mut(&run_id)?;
    let idx = run.shards.iter().position(|s| s.def.index == shard)?;
    Some((run, idx))
}

/// The shard, if `fence` is its current, live lease.
fn current_lease(
    state: &mut State,
    run_id: u64,
    shard: u32,
    fence: u64,
) -> Option<(&mut Run, usize)> {
    let (run, i) = shard_mut(state, run_id, shard)?;
    let s = &run.shards[i];
    (s.state == ShardState::Leased && s.fence == fence && !run.state.is_terminal())
        .then_some((run, i))
}

fn set_limit(state: &mut State, key: &str, rps: f64, burst: u32) {
    let l = state
        .rate_limits
        .entry(key.to_string())
        .or_insert_with(|| RateLimitRecord {
            key: key.to_string(),
            rps,
            burst,
            backoff_until_ms: 0,
        });
    l.rps = rps;
    l.burst = burst;
}
