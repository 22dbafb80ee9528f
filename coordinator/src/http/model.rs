//! The bodies of the JSON API's answers and its query parameters. Runs, pipelines, workers
//! and limits are the protobuf messages of `ControlService` (what `apitapctl -o json`
//! prints); these types only add how current a read is.

use apitap_proto::v1::{ClusterStatusResponse, PipelineInfo, RateLimitInfo, RunInfo, WorkerInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::history::RateSeries;
use crate::node::Node;

/// How current a read is: reads are answered by any node from its applied state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Freshness {
    /// True when this node is not the leader: the answer may lag the leader's by the
    /// entries this node has not applied yet.
    pub stale: bool,
    /// The node that answered.
    pub node_id: u64,
    /// The Raft log index of the state the answer was read from.
    pub applied_index: u64,
}

impl Freshness {
    pub fn of(node: &Node) -> Self {
        let m = node.raft_metrics();
        Freshness {
            stale: m.current_leader != Some(node.id),
            node_id: node.id,
            applied_index: m.last_applied.map_or(0, |l| l.index),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterReply {
    #[serde(flatten)]
    pub fresh: Freshness,
    pub cluster: ClusterStatusResponse,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkersReply {
    #[serde(flatten)]
    pub fresh: Freshness,
    pub workers: Vec<WorkerInfo>,
}

/// A pipeline with its schedule's next start.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineView {
    #[serde(flatten)]
    pub info: PipelineInfo,
    /// When the schedule next starts a run (Unix ms; 0: now); absent without a schedule.
    pub next_run_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelinesReply {
    #[serde(flatten)]
    pub fresh: Freshness,
    pub pipelines: Vec<PipelineView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineReply {
    #[serde(flatten)]
    pub fresh: Freshness,
    pub pipeline: PipelineView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunsReply {
    #[serde(flatten)]
    pub fresh: Freshness,
    pub runs: Vec<RunInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunReply {
    #[serde(flatten)]
    pub fresh: Freshness,
    pub run: RunInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateLimitsReply {
    #[serde(flatten)]
    pub fresh: Freshness,
    pub limits: Vec<RateLimitInfo>,
    /// Granted and used rate of each key over the last ten minutes, one sample every five
    /// seconds (the leader's; empty elsewhere; at most `--history-rate-keys` keys).
    pub history: Vec<RateSeries>,
}

/// The run an action changed or started, as it is once the action committed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionReply {
    pub run: RunInfo,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PipelinesQuery {
    /// Only this namespace (default: every namespace the token covers).
    pub namespace: Option<String>,
    /// Most pipelines to return, by namespace and name (default 50, at most
    /// `--http-max-list`).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RunsQuery {
    /// Only runs of pipelines of this name.
    pub pipeline: Option<String>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Most runs to return, newest first (default 50, at most `--http-max-list`).
    pub limit: Option<u32>,
}
