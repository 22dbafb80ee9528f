//! A granted lease as the worker works on it: its identity, the resolved pipeline, and the
//! worker's shared parts it needs (metrics, rate budgets, egress rules, transform limits).

use std::collections::BTreeMap;
use std::sync::Arc;

use apitap_common::spec::Pipeline;

use crate::metrics::Metrics;

/// A granted lease with everything needed to work on it.
#[derive(Debug, Clone)]
pub struct LeaseWork {
    pub run_id: u64,
    pub shard: u32,
    pub fence: u64,
    pub shard_key: String,
    /// Secrets already substituted.
    pub pipeline: Pipeline,
    pub vars: BTreeMap<String, String>,
    /// This worker's id, for the spans.
    pub worker: String,
    /// The worker's metrics, counted page by page.
    pub metrics: Arc<Metrics>,
    /// Global rate budgets, for pipelines with a `rate_limit`.
    pub budget: Option<crate::rate_budget::BudgetHandle>,
    /// The coordinator's grant span, parent of this lease's spans.
    pub traceparent: Option<String>,
    /// The worker's egress deny-list.
    pub egress: Arc<crate::fetch::Egress>,
    /// The worker's OAuth2 tokens, shared by the shards of a pipeline.
    pub tokens: Arc<crate::fetch::TokenCache>,
    /// Memory and time each page's SQL may take.
    pub transform_limits: crate::transform::TransformLimits,
    /// The folder local sinks must stay inside (`--local-sink-root`).
    pub local_root: Arc<crate::sink::LocalRoot>,
    /// What the shard waits on (an open circuit breaker), read by the agent's heartbeat.
    pub breaker_wait: Arc<crate::fetch::breaker_wait::WaitSlot>,
    /// The worker's sink connection pools (`--sink-connections`).
    pub pools: Arc<crate::sink::SinkPools>,
    /// The records all of the worker's open batches may hold (`--max-batched-records`).
    pub batch_memory: Arc<crate::batch_memory::BatchMemory>,
}

impl LeaseWork {
    /// What this lease's sink may reach: its namespace's local folder and the egress rules.
    pub fn sink_reach(&self) -> crate::sink::Reach<'_> {
        crate::sink::Reach {
            namespace: &self.pipeline.metadata.namespace,
            local_root: &self.local_root,
            egress: &self.egress,
            pools: &self.pools,
        }
    }
}
