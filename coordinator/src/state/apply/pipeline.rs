//! Storing and deleting pipelines.

use std::collections::BTreeMap;

use apitap_common::shard::ShardDef;
use serde::{Deserialize, Serialize};

use super::{rejected, run, Applied};
use crate::state::command::{CommandResult, Key};
use crate::state::model::{pipeline_key, resolve_pipeline_key, PipelineRecord, State};

/// Create or update a pipeline; optionally start a run of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutPipeline {
    pub name: String,
    #[serde(default = "crate::state::model::default_namespace")]
    pub namespace: String,
    pub spec_yaml: String,
    pub secrets: BTreeMap<String, String>,
    pub every_ms: Option<u64>,
    #[serde(default)]
    pub cron: Option<String>,
    pub max_attempts: u32,
    pub source_url: String,
    pub sink: String,
    /// Incremental loads: the first run's watermark.
    #[serde(default)]
    pub initial_watermark: Option<String>,
    /// Incremental loads: what the watermarks are measured on (`Incremental::basis`: cursor
    /// field and URL); `None` for full loads and in entries written before it existed.
    #[serde(default)]
    pub watermark_basis: Option<String>,
    /// The pipeline's `rate_limit`: (key, requests per second, burst).
    #[serde(default)]
    pub rate_limit: Option<(String, f64, u32)>,
    pub start_run: Option<Vec<ShardDef>>,
    /// The started run's trace parent (see `Run::trace`).
    #[serde(default)]
    pub trace: Option<String>,
    pub now_ms: u64,
    /// The proposer's quotas, so that every node applies the same ones (0: none, as in
    /// entries written before quotas).
    #[serde(default)]
    pub quota: Quota,
}

/// Caps a new pipeline (and the rate-limit key it may create) must fit under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub pipelines_per_namespace: u32,
    pub rate_limit_keys: u32,
    /// Keys one namespace's pipelines may create (0: none, as in entries written before).
    #[serde(default)]
    pub rate_limit_keys_per_namespace: u32,
}

impl PutPipeline {
    pub fn apply(&self, state: &mut State) -> Applied {
        let key = self.key();
        if let Some(reason) = self.over_quota(state) {
            return rejected(reason);
        }
        let mut keys = vec![Key::Pipeline(key.clone())];
        if let Some((limit, rps, burst)) = &self.rate_limit {
            if super::ratelimit::set_limit(state, limit, *rps, *burst, Some(&self.namespace)) {
                keys.push(Key::RateLimit(limit.clone()));
            }
        }
        let created = !state.pipelines.contains_key(&key);
        let now_ms = self.now_ms;
        let record = state
            .pipelines
            .entry(key.clone())
            .or_insert_with(|| PipelineRecord::new(&self.name, &self.namespace, now_ms));
        if record.spec_yaml != self.spec_yaml || record.secrets != self.secrets {
            record.version += 1;
            record.updated_at_ms = now_ms;
        }
        record.spec_yaml = self.spec_yaml.clone();
        record.secrets = self.secrets.clone();
        record.every_ms = self.every_ms;
        record.cron = self.cron.clone();
        record.max_attempts = self.max_attempts;
        record.source_url = self.source_url.clone();
        record.sink = self.sink.clone();
        // A watermark of another cursor field or API would skip (or re-read) records of the
        // new one. A record stored before bases were kept has none; its watermarks are kept.
        let basis_changed = matches!(
            (&record.watermark_basis, &self.watermark_basis),
            (Some(old), Some(new)) if old != new
        );
        if record.initial_watermark.is_none() || self.initial_watermark.is_none() || basis_changed {
            record.watermarks.clear();
        }
        record.initial_watermark = self.initial_watermark.clone();
        record.watermark_basis = self.watermark_basis.clone();
        let version = record.version;
        let run_id = self
            .start_run
            .as_ref()
            .and_then(|shards| run::start(state, &key, shards, &self.trace, now_ms, &mut keys));
        (
            CommandResult::PipelineStored {
                version,
                created,
                run_id,
            },
            keys,
        )
    }
}

#[cfg(test)]
impl PutPipeline {
    /// A pipeline `name` in namespace `default` with spec text `spec of <name>`, no secrets,
    /// schedule, limit or run; tests change what they need.
    pub fn for_test(name: &str) -> Self {
        Self {
            name: name.into(),
            namespace: "default".into(),
            spec_yaml: format!("spec of {name}"),
            secrets: BTreeMap::new(),
            every_ms: None,
            cron: None,
            max_attempts: 1,
            source_url: String::new(),
            sink: String::new(),
            initial_watermark: None,
            watermark_basis: None,
            rate_limit: None,
            start_run: None,
            trace: None,
            now_ms: 1,
            quota: Quota::default(),
        }
    }
}

#[cfg(test)]
mod watermark_tests {
    use super::*;

    fn put(basis: &str) -> PutPipeline {
        PutPipeline {
            initial_watermark: Some("0".into()),
            watermark_basis: Some(basis.into()),
            ..PutPipeline::for_test("p")
        }
    }

    fn with_watermark(state: &mut State, basis: &str) {
        put(basis).apply(state);
        let p = state.pipelines.get_mut("default/p").expect("stored");
        p.watermarks.insert("all".into(), "2026-11-01".into());
    }

    #[test]
    fn a_new_cursor_field_or_url_resets_the_watermarks() {
        let mut state = State::default();
        with_watermark(&mut state, "updated_at\nhttps://a/v1");
        put("updated_at\nhttps://a/v1").apply(&mut state);
        assert_eq!(
            state.pipelines["default/p"].watermarks.len(),
            1,
            "same basis keeps them"
        );
        put("created_at\nhttps://a/v1").apply(&mut state);
        assert!(state.pipelines["default/p"].watermarks.is_empty());
        with_watermark(&mut state, "created_at\nhttps://a/v1");
        put("created_at\nhttps://b/v1").apply(&mut state);
        assert!(state.pipelines["default/p"].watermarks.is_empty());
    }

    #[test]
    fn a_full_refresh_hands_its_last_validators_to_the_next_run() {
        let mut state = State::default();
        PutPipeline::for_test("p").apply(&mut state);
        let validators = r#"{"etag":"\"v1\""}"#;
        let p = state.pipelines.get_mut("default/p").expect("stored");
        p.watermarks.insert("all".into(), validators.into());
        let shard = apitap_common::shard::ShardDef {
            index: 0,
            key: "all".into(),
            vars: BTreeMap::new(),
        };
        let id = run::start(&mut state, "default/p", &[shard], &None, 5, &mut Vec::new())
            .expect("run started");
        let vars = &state.runs[&id].shards[0].def.vars;
        assert_eq!(
            vars.get(apitap_common::checkpoint::VALIDATORS_VAR)
                .map(String::as_str),
            Some(validators)
        );
        assert!(!vars.contains_key("watermark"));
        // A new version of the pipeline starts without them.
        PutPipeline::for_test("p").apply(&mut state);
        assert!(state.pipelines["default/p"].watermarks.is_empty());
    }

    #[test]
    fn a_record_without_a_basis_keeps_its_watermarks() {
        let mut state = State::default();
        with_watermark(&mut state, "updated_at\nhttps://a/v1");
        state
            .pipelines
            .get_mut("default/p")
            .unwrap()
            .watermark_basis = None;
        put("updated_at\nhttps://a/v1").apply(&mut state);
        assert_eq!(state.pipelines["default/p"].watermarks.len(), 1);
        assert_eq!(
            state.pipelines["default/p"].watermark_basis.as_deref(),
            Some("updated_at\nhttps://a/v1")
        );
    }
}

impl PutPipeline {
    /// The pipeline's key in the state (`namespace/name`).
    pub fn key(&self) -> String {
        pipeline_key(&self.namespace, &self.name)
    }

    fn over_quota(&self, state: &State) -> Option<String> {
        let q = self.quota;
        if q.pipelines_per_namespace > 0 && !state.pipelines.contains_key(&self.key()) {
            let held = state
                .pipelines
                .values()
                .filter(|p| p.namespace == self.namespace)
                .count();
            if held >= q.pipelines_per_namespace as usize {
                return Some(format!(
                    "namespace {:?} holds {held} pipelines, its quota \
                     (--max-pipelines-per-namespace); delete unused ones or raise the quota",
                    self.namespace
                ));
            }
        }
        if let Some((key, _, _)) = &self.rate_limit {
            let n = state.rate_limits.len();
            if q.rate_limit_keys > 0
                && !state.rate_limits.contains_key(key)
                && n >= q.rate_limit_keys as usize
            {
                return Some(format!(
                    "the cluster holds {n} rate-limit keys, its maximum (--max-rate-limit-keys); \
                     reuse an existing key or raise the maximum"
                ));
            }
            let owned = state
                .rate_limits
                .values()
                .filter(|l| l.owner.as_deref() == Some(self.namespace.as_str()))
                .count();
            if q.rate_limit_keys_per_namespace > 0
                && !state.rate_limits.contains_key(key)
                && owned >= q.rate_limit_keys_per_namespace as usize
            {
                return Some(format!(
                    "namespace {:?} created {owned} rate-limit keys, its quota \
                     (--max-rate-limit-keys-per-namespace); reuse one of them or raise the quota",
                    self.namespace
                ));
            }
        }
        None
    }
}

/// Delete a pipeline and cancel its active runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletePipeline {
    /// The pipeline's key, `namespace/name` (a bare name: namespace `default`).
    pub name: String,
    pub now_ms: u64,
}

impl DeletePipeline {
    pub fn apply(&self, state: &mut State) -> Applied {
        let key = resolve_pipeline_key(&self.name);
        let Some(removed) = state.pipelines.remove(&key) else {
            return rejected(format!("pipeline {key} not found"));
        };
        let mut keys = vec![Key::Pipeline(key)];
        let mut cancelled = 0;
        for run in state.runs.values_mut() {
            let ns = if run.namespace.is_empty() {
                removed.namespace.as_str()
            } else {
                run.namespace.as_str()
            };
            if run.pipeline == removed.name && ns == removed.namespace && !run.state.is_terminal() {
                run.cancel(self.now_ms);
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
}

/// Secret values sealed again under the current key (`secrets rotate-key`): the same
/// values, so the version stays. Applies only to the version they were read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResealSecrets {
    /// The pipeline's key, `namespace/name` (a bare name: namespace `default`).
    pub pipeline: String,
    pub version: u64,
    pub secrets: BTreeMap<String, String>,
    /// The run whose copy is resealed, instead of the pipeline's.
    #[serde(default)]
    pub run_id: Option<u64>,
}

impl ResealSecrets {
    pub fn apply(&self, state: &mut State) -> Applied {
        if let Some(id) = self.run_id {
            let Some(run) = state.runs.get_mut(&id) else {
                return rejected(format!("run {id} not found"));
            };
            if !run.secrets.keys().eq(self.secrets.keys()) {
                return rejected(format!(
                    "run {id}'s secrets changed; run the rotation again"
                ));
            }
            run.secrets = self.secrets.clone();
            return super::done(vec![Key::Run(id)]);
        }
        let key = resolve_pipeline_key(&self.pipeline);
        let Some(p) = state.pipelines.get_mut(&key) else {
            return rejected(format!("pipeline {key} not found"));
        };
        if p.version != self.version || !p.secrets.keys().eq(self.secrets.keys()) {
            return rejected(format!(
                "pipeline {key} changed while its secrets were resealed; run the rotation again"
            ));
        }
        p.secrets = self.secrets.clone();
        super::done(vec![Key::Pipeline(key)])
    }
}
