//! Starting, cancelling, retrying and pruning runs.

use apitap_common::shard::ShardDef;
use apitap_proto::limits::{truncate_utf8, MAX_ERROR_BYTES};
use serde::{Deserialize, Serialize};

use super::{done, rejected, Applied};
use crate::state::command::{CommandResult, Key};
use crate::state::model::{resolve_pipeline_key, Run, RunState, Shard, State};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRun {
    /// The pipeline's key, `namespace/name` (a bare name: namespace `default`).
    pub pipeline: String,
    pub shards: Vec<ShardDef>,
    /// The run's trace parent (see `Run::trace`).
    #[serde(default)]
    pub trace: Option<String>,
    pub now_ms: u64,
    /// A scheduled run that could not be planned (its shards are over a limit): recorded as
    /// a run failed at once with this error, so the user sees it and the schedule waits for
    /// its next time instead of trying on every tick.
    #[serde(default)]
    pub failed: Option<String>,
}

impl StartRun {
    pub fn apply(&self, state: &mut State) -> Applied {
        let key = resolve_pipeline_key(&self.pipeline);
        let mut keys = vec![Key::Pipeline(key.clone())];
        match start(
            state,
            &key,
            &self.shards,
            &self.trace,
            self.now_ms,
            &mut keys,
        ) {
            Some(run_id) => {
                if let (Some(error), Some(run)) = (&self.failed, state.runs.get_mut(&run_id)) {
                    run.state = RunState::Failed;
                    run.error = Some(truncate_utf8(error, MAX_ERROR_BYTES));
                    run.finished_at_ms = Some(self.now_ms);
                }
                (CommandResult::RunStarted { run_id }, keys)
            }
            None => rejected(format!("pipeline {key} not found")),
        }
    }
}

/// Stop an active run; leased shards are revoked at the holders' next heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRun {
    pub run_id: u64,
    pub now_ms: u64,
}

impl CancelRun {
    pub fn apply(&self, state: &mut State) -> Applied {
        let run_id = self.run_id;
        let Some(run) = state.runs.get_mut(&run_id) else {
            return rejected(format!("run {run_id} not found"));
        };
        if run.state.is_terminal() {
            return rejected(format!("run {run_id} already {}", run.state.as_str()));
        }
        run.cancel(self.now_ms);
        done(vec![Key::Run(run_id)])
    }
}

/// Put a finished run's failed and cancelled shards back to pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryRun {
    pub run_id: u64,
    pub now_ms: u64,
}

impl RetryRun {
    pub fn apply(&self, state: &mut State) -> Applied {
        let run_id = self.run_id;
        let Some(run) = state.runs.get_mut(&run_id) else {
            return rejected(format!("run {run_id} not found"));
        };
        if !run.state.is_terminal() {
            return rejected(format!("run {run_id} is still {}", run.state.as_str()));
        }
        let mut again = 0;
        for s in &mut run.shards {
            again += usize::from(s.retry());
        }
        if again == 0 {
            return rejected(format!("run {run_id} has no failed or cancelled shard"));
        }
        run.reopen();
        done(vec![Key::Run(run_id)])
    }
}

/// Delete these finished runs and their shards (retention). A run that is not finished,
/// or is its pipeline's last run, is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneRuns {
    pub run_ids: Vec<u64>,
}

impl PruneRuns {
    pub fn apply(&self, state: &mut State) -> Applied {
        let mut keys = Vec::new();
        for id in &self.run_ids {
            let Some(run) = state.runs.get(id) else {
                continue;
            };
            let last = state
                .pipelines
                .get(&state.pipeline_key_of_run(run))
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
}

/// Creates a run of the pipeline keyed `pipeline` (`namespace/name`) with `shards`; `None`
/// if the pipeline does not exist.
pub(super) fn start(
    state: &mut State,
    pipeline: &str,
    shards: &[ShardDef],
    trace: &Option<String>,
    now_ms: u64,
    keys: &mut Vec<Key>,
) -> Option<u64> {
    let p = state.pipelines.get_mut(pipeline)?;
    state.next_run_id += 1;
    let id = state.next_run_id;
    p.last_run_id = Some(id);
    let shards: Vec<Shard> = shards
        .iter()
        .cloned()
        .map(|mut def| {
            if let Some(initial) = &p.initial_watermark {
                let w = p.watermarks.get(&def.key).unwrap_or(initial);
                def.vars.insert("watermark".into(), w.clone());
            } else if let Some(v) = p.watermarks.get(&def.key) {
                // A full refresh's "watermark" is its last response's validators.
                def.vars
                    .insert(apitap_common::checkpoint::VALIDATORS_VAR.into(), v.clone());
            }
            Shard::new(def)
        })
        .collect();
    state.runs.insert(
        id,
        Run {
            id,
            pipeline: p.name.clone(),
            namespace: p.namespace.clone(),
            pipeline_version: p.version,
            spec_yaml: p.spec_yaml.clone(),
            max_attempts: p.max_attempts,
            state: RunState::Pending,
            created_at_ms: now_ms,
            finished_at_ms: None,
            shards,
            error: None,
            trace: trace.clone(),
            secrets: p.secrets.clone(),
        },
    );
    keys.push(Key::Run(id));
    Some(id)
}
