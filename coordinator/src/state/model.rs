//! What the coordinator stores: pipelines, runs with their shards, and registered workers.
//! Lifecycles are explicit enums with named transitions in `transition.rs`.

use std::collections::BTreeMap;

use apitap_common::shard::ShardDef;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRecord {
    pub name: String,
    /// `metadata.namespace`: part of the pipeline's identity (`pipeline_key`) and whose
    /// tokens may touch it.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Bumped whenever the spec text changes.
    pub version: u64,
    /// The document as submitted; `${VAR}` references unresolved.
    pub spec_yaml: String,
    /// Values for the `${VAR}` references (handed to workers with their leases only).
    pub secrets: BTreeMap<String, String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// `schedule.every`, if the pipeline runs on a schedule.
    pub every_ms: Option<u64>,
    /// `schedule.cron`, if the pipeline runs on a cron schedule (UTC).
    #[serde(default)]
    pub cron: Option<String>,
    /// Failed attempts per shard before the run fails.
    pub max_attempts: u32,
    pub last_run_id: Option<u64>,
    /// One-line summaries for listings.
    pub source_url: String,
    pub sink: String,
    /// Incremental loads: `{{ watermark }}` for the next run, by shard key.
    #[serde(default)]
    pub watermarks: BTreeMap<String, String>,
    /// Incremental loads: the first run's watermark; `None` for full loads.
    #[serde(default)]
    pub initial_watermark: Option<String>,
    /// Incremental loads: the cursor field and URL the watermarks were measured on; a
    /// submit with another one resets them. `None` when stored before it was kept.
    #[serde(default)]
    pub watermark_basis: Option<String>,
}

pub fn default_namespace() -> String {
    "default".into()
}

/// A pipeline's key in the state: `namespace/name`. Both parts are DNS labels (no `/`),
/// so the key is unambiguous, and two namespaces may each have a pipeline `orders`.
pub fn pipeline_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// A request's namespace: empty means `default`.
pub fn namespace_or_default(namespace: &str) -> &str {
    if namespace.is_empty() {
        "default"
    } else {
        namespace
    }
}

/// `key` as a full pipeline key: a bare name (a command written before namespaces were
/// part of a pipeline's identity) means namespace `default`.
pub fn resolve_pipeline_key(key: &str) -> String {
    if key.contains('/') {
        key.to_string()
    } else {
        pipeline_key("default", key)
    }
}

impl PipelineRecord {
    /// Its key in `State::pipelines`.
    pub fn key(&self) -> String {
        pipeline_key(&self.namespace, &self.name)
    }

    /// A pipeline before its first `PutPipeline` filled it in.
    pub fn new(name: &str, namespace: &str, now_ms: u64) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            version: 0,
            spec_yaml: String::new(),
            secrets: BTreeMap::new(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            every_ms: None,
            cron: None,
            max_attempts: 1,
            last_run_id: None,
            source_url: String::new(),
            sink: String::new(),
            watermarks: BTreeMap::new(),
            initial_watermark: None,
            watermark_basis: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    Pending,
    Leased,
    Succeeded,
    Failed,
    Cancelled,
}

impl ShardState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ShardState::Succeeded | ShardState::Failed | ShardState::Cancelled
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Pending => "pending",
            ShardState::Leased => "leased",
            ShardState::Succeeded => "succeeded",
            ShardState::Failed => "failed",
            ShardState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub def: ShardDef,
    pub state: ShardState,
    /// Holder of the current lease (while `Leased`) or of the last one.
    pub worker: Option<String>,
    /// Fence of the current or last lease: the Raft log index of its grant.
    pub fence: u64,
    /// Latest checkpoint the holder reported (the sink's copy is authoritative).
    pub checkpoint: Option<String>,
    pub pages: u64,
    pub records: u64,
    /// Leases granted so far.
    pub attempts: u32,
    /// Failed attempts reported by workers.
    pub failures: u32,
    /// Earliest time a failed shard may be granted again (back-off).
    pub not_before_ms: u64,
    pub error: Option<String>,
    /// W3C `traceparent` of the current lease's grant, handed to the holder with the lease
    /// (set only while spans are exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Records this shard's leases wrote to the sink's dead-letter table, over all attempts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dead_letters: u64,
    /// The newest few of them (at most `MAX_DEAD_LETTER_SAMPLE`), so that people see what
    /// failed without reading the sink.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letter_sample: Vec<DeadLetterSample>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One dead-lettered record as the shard keeps it: bounded by `MAX_ERROR_BYTES` and
/// `MAX_DEAD_LETTER_RECORD_BYTES`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterSample {
    /// The page (1-based) the record came from.
    pub page: u64,
    pub error: String,
    /// The raw record as JSON, cut at `MAX_DEAD_LETTER_RECORD_BYTES`.
    pub record: String,
}

impl Shard {
    pub fn new(def: ShardDef) -> Self {
        Self {
            def,
            state: ShardState::Pending,
            worker: None,
            fence: 0,
            checkpoint: None,
            pages: 0,
            records: 0,
            attempts: 0,
            failures: 0,
            not_before_ms: 0,
            error: None,
            trace: None,
            dead_letters: 0,
            dead_letter_sample: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub pipeline: String,
    /// Its pipeline's namespace when it started (empty for runs started before runs kept
    /// it: their pipeline's namespace applies), so that a run of a deleted pipeline stays
    /// in its namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub pipeline_version: u64,
    /// The spec this run executes, fixed at creation so that edits do not change a run.
    pub spec_yaml: String,
    pub max_attempts: u32,
    pub state: RunState,
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    /// Stored under keys of their own (see `meta`), so a shard's change writes one shard.
    #[serde(default)]
    pub shards: Vec<Shard>,
    pub error: Option<String>,
    /// W3C `traceparent` of the span that started the run: every lease grant of the run is
    /// a child of it (set only while spans are exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The secret values (sealed when a key file is set) of the pipeline version this run
    /// started with: its leases carry these and no others, whatever happens to the
    /// pipeline later (edits, credential changes, delete and re-create).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

/// A run without its shards: what the state machine stores under the run's key.
#[derive(Serialize)]
pub struct RunMeta<'a> {
    pub id: u64,
    pub pipeline: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub namespace: &'a str,
    pub pipeline_version: u64,
    pub spec_yaml: &'a str,
    pub max_attempts: u32,
    pub state: RunState,
    pub created_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub error: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: &'a Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: &'a BTreeMap<String, String>,
}

impl Run {
    pub fn meta(&self) -> RunMeta<'_> {
        RunMeta {
            id: self.id,
            pipeline: &self.pipeline,
            namespace: &self.namespace,
            pipeline_version: self.pipeline_version,
            spec_yaml: &self.spec_yaml,
            max_attempts: self.max_attempts,
            state: self.state,
            created_at_ms: self.created_at_ms,
            finished_at_ms: self.finished_at_ms,
            error: &self.error,
            trace: &self.trace,
            secrets: &self.secrets,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub id: String,
    pub addr: String,
    pub slots: u32,
    pub registered_at_ms: u64,
}

/// A global rate limit (DESIGN §7), shared by every worker and pipeline using its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimitRecord {
    pub key: String,
    pub rps: f64,
    pub burst: u32,
    /// Unix ms until which nobody may call the key (an upstream 429's Retry-After).
    pub backoff_until_ms: u64,
    /// The namespace whose pipeline created the key: pipelines of other namespaces use the
    /// key's limit but cannot change it (an admin can, with `ratelimit set`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The whole replicated state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub pipelines: BTreeMap<String, PipelineRecord>,
    pub runs: BTreeMap<u64, Run>,
    pub workers: BTreeMap<String, WorkerRecord>,
    pub next_run_id: u64,
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimitRecord>,
    /// API tokens by id (hashes only).
    #[serde(default)]
    pub tokens: BTreeMap<String, super::access::TokenRecord>,
    /// The newest control changes, by sequence number.
    #[serde(default)]
    pub audit: BTreeMap<u64, super::access::AuditRecord>,
}

impl State {
    /// The namespace of `run`. Runs started before runs recorded their namespace were
    /// started when pipeline names were unique across namespaces: their pipeline's.
    pub fn namespace_of_run<'a>(&'a self, run: &'a Run) -> &'a str {
        if !run.namespace.is_empty() {
            return &run.namespace;
        }
        self.pipelines
            .values()
            .find(|p| p.name == run.pipeline)
            .map_or("default", |p| p.namespace.as_str())
    }

    /// The key of `run`'s pipeline in `pipelines`.
    pub fn pipeline_key_of_run(&self, run: &Run) -> String {
        pipeline_key(self.namespace_of_run(run), &run.pipeline)
    }

    /// Leased shards by namespace (the concurrent-shard quota counts these).
    pub fn leased_by_namespace(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for run in self.active_runs() {
            let n = run
                .shards
                .iter()
                .filter(|s| s.state == ShardState::Leased)
                .count() as u32;
            if n > 0 {
                *out.entry(self.namespace_of_run(run).to_string())
                    .or_default() += n;
            }
        }
        out
    }

    pub fn active_runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values().filter(|r| !r.state.is_terminal())
    }

    /// Number of leases each worker holds.
    pub fn leases_by_worker(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for run in self.active_runs() {
            for s in &run.shards {
                if s.state == ShardState::Leased {
                    if let Some(w) = &s.worker {
                        *out.entry(w.clone()).or_insert(0) += 1;
                    }
                }
            }
        }
        out
    }
}
