//! The lease lifecycle: grants, expiry, release, checkpoints and completion. Every report
//! from a worker names the worker, and applies only while that worker holds the shard under
//! that fence: a stale lease, another worker's lease or a forged fence is rejected here,
//! deterministically, whatever the API layer checked before.
#![allow(
    clippy::indexing_slicing,
    reason = "a shard position i always comes from `shard_mut` or `held`, which found the shard at i in the same run"
)]

use apitap_proto::limits::{
    truncate_utf8, MAX_CHECKPOINT_BYTES, MAX_DEAD_LETTER_RECORD_BYTES, MAX_DEAD_LETTER_SAMPLE,
    MAX_ERROR_BYTES,
};
use serde::{Deserialize, Serialize};

use super::{done, rejected, shard_mut, Applied};
use crate::state::command::{CommandResult, Key};
use crate::state::model::{DeadLetterSample, Run, Shard, State};

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

/// Grant pending shards to workers, in one entry per scheduler tick; each lease's fence is
/// this entry's log index (unique per shard, and growing across its leases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantLeases {
    pub grants: Vec<LeaseGrant>,
    /// The proposer's `--max-shards-per-namespace`, so that every node applies the same
    /// quota (0: none, as in entries written before the quota): a grant that would put a
    /// namespace over it is skipped.
    #[serde(default)]
    pub max_shards_per_namespace: u32,
}

impl GrantLeases {
    pub fn apply(&self, state: &mut State, log_index: u64) -> Applied {
        let mut keys = Vec::new();
        let quota = self.max_shards_per_namespace;
        let mut leased = if quota > 0 {
            state.leased_by_namespace()
        } else {
            Default::default()
        };
        for g in &self.grants {
            let namespace = match state.runs.get(&g.run_id) {
                Some(run) if quota > 0 => state.namespace_of_run(run).to_string(),
                _ => String::new(),
            };
            let held = leased.entry(namespace).or_default();
            if quota > 0 && *held >= quota {
                continue;
            }
            let Some((run, i)) = shard_mut(state, g.run_id, g.shard) else {
                continue;
            };
            if run.state.is_terminal()
                || !run.shards[i].grant(&g.worker, log_index, g.trace.clone())
            {
                continue;
            }
            *held += 1;
            run.mark_running();
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
}

/// The holder missed its heartbeats for a TTL (proposed by the leader).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpireLease {
    pub run_id: u64,
    pub shard: u32,
    pub fence: u64,
}

impl ExpireLease {
    pub fn apply(&self, state: &mut State) -> Applied {
        let Some((run, i)) = held(state, self.run_id, self.shard, self.fence, "") else {
            return rejected("lease is not current");
        };
        run.shards[i].release(None);
        done(vec![Key::Shard(self.run_id, i)])
    }
}

/// The holder gave the lease back (drain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseLease {
    pub run_id: u64,
    pub shard: u32,
    pub fence: u64,
    pub checkpoint: Option<String>,
    /// The reporting worker (empty only in entries written before reports named it).
    #[serde(default)]
    pub worker: String,
}

impl ReleaseLease {
    pub fn apply(&self, state: &mut State) -> Applied {
        if let Some(r) = oversized(&self.worker, self.checkpoint.as_deref()) {
            return r;
        }
        let Some((run, i)) = held(state, self.run_id, self.shard, self.fence, &self.worker) else {
            return rejected(not_held(&self.worker));
        };
        run.shards[i].release(self.checkpoint.as_ref());
        done(vec![Key::Shard(self.run_id, i)])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub run_id: u64,
    pub shard: u32,
    pub fence: u64,
    pub checkpoint: String,
    pub pages: u64,
    pub records: u64,
    /// The reporting worker (empty only in entries written before reports named it).
    #[serde(default)]
    pub worker: String,
}

impl Checkpoint {
    pub fn apply(&self, state: &mut State) -> Applied {
        if let Some(r) = oversized(&self.worker, Some(&self.checkpoint)) {
            return r;
        }
        let Some((run, i)) = held(state, self.run_id, self.shard, self.fence, &self.worker) else {
            return rejected(not_held(&self.worker));
        };
        let s = &mut run.shards[i];
        s.checkpoint = Some(self.checkpoint.clone());
        s.pages = self.pages;
        s.records = self.records;
        done(vec![Key::Shard(self.run_id, i)])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteShard {
    pub run_id: u64,
    pub shard: u32,
    pub fence: u64,
    pub ok: bool,
    /// False for errors retrying cannot fix (the user's).
    pub retriable: bool,
    pub error: Option<String>,
    pub pages: u64,
    pub records: u64,
    /// Incremental loads: the largest cursor value this shard committed.
    #[serde(default)]
    pub watermark: Option<String>,
    pub now_ms: u64,
    /// The reporting worker (empty only in entries written before reports named it).
    #[serde(default)]
    pub worker: String,
    /// Records the lease wrote to the sink's dead-letter table.
    #[serde(default)]
    pub dead_letters: u64,
    /// A few of them; `apply` keeps the newest `MAX_DEAD_LETTER_SAMPLE`, each bounded.
    #[serde(default)]
    pub dead_letter_sample: Vec<DeadLetterSample>,
}

impl CompleteShard {
    pub fn apply(&self, state: &mut State) -> Applied {
        if let Some(r) = oversized(&self.worker, self.watermark.as_deref()) {
            return r;
        }
        // Bounded like the watermark: see `oversized`.
        let bounded = !self.worker.is_empty();
        let pipeline = state
            .runs
            .get(&self.run_id)
            .map(|r| state.pipeline_key_of_run(r));
        let Some((run, i)) = held(state, self.run_id, self.shard, self.fence, &self.worker) else {
            return rejected(not_held(&self.worker));
        };
        let max_attempts = run.max_attempts;
        let s = &mut run.shards[i];
        s.pages = self.pages;
        s.records = self.records;
        s.error = match (&self.error, bounded) {
            (Some(e), true) => Some(truncate_utf8(e, MAX_ERROR_BYTES)),
            (e, _) => e.clone(),
        };
        keep_dead_letters(s, self.dead_letters, &self.dead_letter_sample);
        if self.ok {
            s.succeed();
        } else {
            s.fail(self.retriable, max_attempts, self.now_ms);
        }
        let advanced = (self.ok && self.watermark.is_some()).then(|| s.def.key.clone());
        run.finish_if_done(self.now_ms);
        let mut keys = vec![Key::Shard(self.run_id, i)];
        if let (Some(shard_key), Some(w), Some(pipeline)) = (advanced, &self.watermark, pipeline) {
            if let Some(p) = state.pipelines.get_mut(&pipeline) {
                p.watermarks.insert(shard_key, w.clone());
                keys.push(Key::Pipeline(pipeline));
            }
        }
        done(keys)
    }
}

/// Adds a lease's dead letters to the shard: the count, and the sample cut to its bounds
/// (the newest `MAX_DEAD_LETTER_SAMPLE`), so that no report can grow the state unbounded.
fn keep_dead_letters(s: &mut Shard, count: u64, sample: &[DeadLetterSample]) {
    s.dead_letters = s.dead_letters.saturating_add(count);
    let newest = sample.len().saturating_sub(MAX_DEAD_LETTER_SAMPLE);
    for d in sample.iter().skip(newest) {
        s.dead_letter_sample.push(DeadLetterSample {
            page: d.page,
            error: truncate_utf8(&d.error, MAX_ERROR_BYTES),
            record: truncate_utf8(&d.record, MAX_DEAD_LETTER_RECORD_BYTES),
        });
    }
    let over = s
        .dead_letter_sample
        .len()
        .saturating_sub(MAX_DEAD_LETTER_SAMPLE);
    s.dead_letter_sample.drain(..over);
}

/// The shard, if `fence` is its current, live lease held by `worker` (see
/// `Shard::held_by` for an empty `worker`).
fn held<'a>(
    state: &'a mut State,
    run_id: u64,
    shard: u32,
    fence: u64,
    worker: &str,
) -> Option<(&'a mut Run, usize)> {
    let (run, i) = shard_mut(state, run_id, shard)?;
    (!run.state.is_terminal() && run.shards[i].held_by(worker, fence)).then_some((run, i))
}

fn not_held(worker: &str) -> String {
    if worker.is_empty() {
        "lease is not current".into()
    } else {
        format!("lease is not current or not held by worker {worker}")
    }
}

/// The rejection of a report whose checkpoint (or watermark) is over
/// [`MAX_CHECKPOINT_BYTES`]. Entries written before reports named their `worker` predate
/// the limits too: they apply as they did then, so that every node reaches the same state.
fn oversized(worker: &str, checkpoint: Option<&str>) -> Option<Applied> {
    let len = checkpoint.map_or(0, str::len);
    (!worker.is_empty() && len > MAX_CHECKPOINT_BYTES).then(|| rejected(checkpoint_too_large(len)))
}

fn checkpoint_too_large(len: usize) -> String {
    format!(
        "checkpoint of {len} bytes is over the limit of {MAX_CHECKPOINT_BYTES} bytes \
         (MAX_CHECKPOINT_BYTES); a cursor this large is not a position"
    )
}
