//! The read model both front doors serve: `ControlService` (after a linearizable check) and
//! the HTTP JSON API and console (from this node's applied state, possibly stale). Each view
//! converts only what it returns, under one short read of the state.

use std::collections::BTreeSet;

use apitap_proto::v1::{
    ClusterStatusResponse, MemberInfo, PipelineInfo, RateLimitInfo, RunInfo, WorkerInfo,
};

use super::convert::{pipeline_info, run_info};
use crate::auth::Caller;
use crate::node::Node;
use crate::ratelimit::Usage;
use crate::state::model::RateLimitRecord;

/// Which runs a listing returns, newest first.
#[derive(Debug, Default, Clone)]
pub struct RunFilter<'a> {
    /// A pipeline name (any namespace) or empty for all.
    pub pipeline: &'a str,
    /// A namespace or empty for all the caller sees.
    pub namespace: &'a str,
    pub limit: usize,
}

/// The first `limit` pipelines of `namespace` (empty: all) that `caller` sees, by key.
pub fn pipelines(node: &Node, caller: &Caller, namespace: &str, limit: usize) -> Vec<PipelineInfo> {
    let st = node.state();
    st.state
        .pipelines
        .values()
        .filter(|p| namespace.is_empty() || p.namespace == namespace)
        .filter(|p| caller.sees(&p.namespace))
        .take(limit)
        .map(|p| pipeline_info(p, &st.state))
        .collect()
}

/// The pipeline stored under `key`, if `caller` sees it.
pub fn pipeline(node: &Node, caller: &Caller, key: &str) -> Option<PipelineInfo> {
    let st = node.state();
    st.state
        .pipelines
        .get(key)
        .filter(|p| caller.sees(&p.namespace))
        .map(|p| pipeline_info(p, &st.state))
}

/// The newest runs that match `filter` and that `caller` sees.
pub fn runs(node: &Node, caller: &Caller, filter: &RunFilter<'_>) -> Vec<RunInfo> {
    let st = node.state();
    st.state
        .runs
        .values()
        .rev()
        .filter(|r| filter.pipeline.is_empty() || r.pipeline == filter.pipeline)
        .filter(|r| {
            let ns = st.state.namespace_of_run(r);
            (filter.namespace.is_empty() || ns == filter.namespace) && caller.sees(ns)
        })
        .take(filter.limit)
        .map(|r| run_info(r, &st.state))
        .collect()
}

/// Run `id`, if `caller` sees it, with the circuit breakers its leased shards wait on (the
/// leader's soft state, from the holders' heartbeats: none elsewhere).
pub fn run(node: &Node, caller: &Caller, id: u64) -> Option<RunInfo> {
    let mut info = {
        let st = node.state();
        st.state
            .runs
            .get(&id)
            .filter(|r| caller.sees(st.state.namespace_of_run(r)))
            .map(|r| run_info(r, &st.state))?
    };
    let live = node.liveness();
    for s in info.shards.iter_mut().filter(|s| s.state == "leased") {
        s.breaker = live.wait_of(&s.worker, (id, s.index, s.fence)).cloned();
    }
    Some(info)
}

/// What `each` makes of every rate-limit key and its usage now, under one read of the
/// state and the budgets; the usage is the leader's (zero elsewhere).
pub fn rate_limit_usage<T>(
    node: &Node,
    mut each: impl FnMut(&RateLimitRecord, Usage) -> T,
) -> Vec<T> {
    let now = std::time::Instant::now();
    let st = node.state();
    let budgets = node
        .budgets
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    st.state
        .rate_limits
        .values()
        .map(|l| each(l, budgets.usage(&l.key, now)))
        .collect()
}

/// Every rate-limit key with its usage; the usage is the leader's (zero elsewhere).
pub fn rate_limits(node: &Node) -> Vec<RateLimitInfo> {
    rate_limit_usage(node, |l, u| RateLimitInfo {
        key: l.key.clone(),
        rps: l.rps,
        burst: l.burst,
        granted_rps: u.granted_rps,
        used_last_second: u.used_last_second,
        workers: u.workers,
        backoff_until_ms: l.backoff_until_ms,
    })
}

/// Whether a status carries the digest of the applied state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// Hash the whole state (serialised, under the read lock: milliseconds per thousand
    /// runs), so that operators can compare nodes.
    Compute,
    /// Leave `state_digest` empty: pages and polls that do not show it.
    Skip,
}

/// The cluster as this node sees it: Raft membership and progress, and the workers with
/// the leases they hold (heartbeats are the leader's soft state: zero elsewhere).
pub fn cluster_status(node: &Node, digest: Digest) -> ClusterStatusResponse {
    let m = node.raft_metrics();
    let (digest, snapshots_installed, pipelines) = {
        let st = node.state();
        (
            match digest {
                Digest::Compute => st.digest(),
                Digest::Skip => String::new(),
            },
            st.snapshots_installed,
            st.state.pipelines.len() as u64,
        )
    };
    ClusterStatusResponse {
        node_id: node.id,
        leader_id: m.current_leader.unwrap_or(0),
        leader_addr: node.leader_addr().unwrap_or_default(),
        term: m.current_term,
        last_log_index: m.last_log_index.unwrap_or(0),
        applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        snapshot_index: m.snapshot.map(|l| l.index).unwrap_or(0),
        members: members(node, &m),
        workers: workers(node),
        role: format!("{:?}", m.state).to_lowercase(),
        state_digest: digest,
        snapshots_installed,
        pipelines,
        change: String::new(),
        elections: node.history.elections.recent(),
    }
}

fn members(node: &Node, m: &openraft::RaftMetrics<u64, openraft::BasicNode>) -> Vec<MemberInfo> {
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let replication = m.replication.clone().unwrap_or_default();
    membership
        .nodes()
        .map(|(id, n)| {
            let matched = replication.get(id).cloned().flatten().map(|l| l.index);
            let is_self = *id == node.id;
            MemberInfo {
                node_id: *id,
                addr: n.addr.clone(),
                voter: voters.contains(id),
                role: if m.current_leader == Some(*id) {
                    "leader".into()
                } else if voters.contains(id) {
                    "follower".into()
                } else {
                    "learner".into()
                },
                reachable: is_self || matched.is_some(),
                matched_index: if is_self {
                    m.last_applied.map(|l| l.index).unwrap_or(0)
                } else {
                    matched.unwrap_or(0)
                },
            }
        })
        .collect()
}

/// The registered workers with the leases they hold, their liveness and last heartbeat
/// (the leader's soft state: not live and zero elsewhere).
pub fn workers(node: &Node) -> Vec<WorkerInfo> {
    let now = std::time::Instant::now();
    let ttl = node.config.lease_ttl;
    let st = node.state();
    let held = st.state.leases_by_worker();
    let live = node.liveness();
    st.state
        .workers
        .values()
        .map(|w| {
            let seen = live
                .workers
                .get(&w.id)
                .map(|s| now.duration_since(s.last_seen).as_millis() as u64);
            WorkerInfo {
                worker_id: w.id.clone(),
                addr: w.addr.clone(),
                slots: w.slots,
                leases: held.get(&w.id).copied().unwrap_or(0),
                live: live.is_live(&w.id, ttl, now),
                last_heartbeat_ms_ago: seen.unwrap_or(0),
                draining: live.workers.get(&w.id).is_some_and(|s| s.draining),
            }
        })
        .collect()
}
