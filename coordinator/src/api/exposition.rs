//! The coordinator's `/metrics` families, read at scrape time: the node's counters
//! ([`crate::metrics::Metrics`]), and gauges read from Raft, the applied state and the
//! leader's soft state, so they can never drift from what they describe.

use std::sync::Arc;
use std::time::Instant;

use apitap_common::metrics::Snapshot;
use apitap_common::shutdown::ShutdownSignal;
use openraft::ServerState;

use crate::node::Node;
use crate::state::model::{RunState, ShardState};

const RUN_STATES: [RunState; 5] = [
    RunState::Pending,
    RunState::Running,
    RunState::Succeeded,
    RunState::Failed,
    RunState::Cancelled,
];

const SHARD_STATES: [ShardState; 5] = [
    ShardState::Pending,
    ShardState::Leased,
    ShardState::Succeeded,
    ShardState::Failed,
    ShardState::Cancelled,
];

const ROLES: [(ServerState, &str); 5] = [
    (ServerState::Leader, "leader"),
    (ServerState::Follower, "follower"),
    (ServerState::Candidate, "candidate"),
    (ServerState::Learner, "learner"),
    (ServerState::Shutdown, "shutdown"),
];

/// Every family: counters, then gauges read from Raft and the applied state.
pub fn snapshot(node: &Node) -> Snapshot {
    Exposition { node }.snapshot()
}

struct Exposition<'a> {
    node: &'a Node,
}

impl Exposition<'_> {
    fn snapshot(&self) -> Snapshot {
        let node = self.node;
        let counters = &node.metrics;
        let mut e = Snapshot::new();
        let raft = node.raft_metrics();
        let is_leader = raft.current_leader == Some(node.id) && raft.state == ServerState::Leader;
        e.gauge(
            "apitap_raft_is_leader",
            "1 if this node is the Raft leader.",
            u8::from(is_leader),
        )
        .gauge_by(
            "apitap_raft_role",
            "1 for this node's current Raft role.",
            "role",
            ROLES
                .iter()
                .map(|(s, name)| (*name, f64::from(u8::from(raft.state == *s)))),
        )
        .gauge(
            "apitap_raft_has_leader",
            "1 if this node knows a leader for the current term.",
            u8::from(raft.current_leader.is_some()),
        )
        .gauge(
            "apitap_raft_term",
            "Current Raft term.",
            raft.current_term as f64,
        )
        .gauge(
            "apitap_raft_last_log_index",
            "Index of the last entry in this node's Raft log.",
            raft.last_log_index.unwrap_or(0) as f64,
        )
        .gauge(
            "apitap_raft_applied_index",
            "Index of the last Raft entry applied to the state machine (trails the commit index by the apply queue).",
            raft.last_applied.map_or(0, |l| l.index) as f64,
        )
        .gauge(
            "apitap_raft_snapshot_index",
            "Index of the last entry in this node's latest snapshot.",
            raft.snapshot.map_or(0, |l| l.index) as f64,
        )
        .counter(
            "apitap_raft_leader_changes_total",
            "Changes of Raft leader (or term) this node observed.",
            counters.leader_changes.get(),
        );
        if let Some(ms) = raft.millis_since_quorum_ack {
            e.gauge(
                "apitap_raft_quorum_ack_age_seconds",
                "Leader only: time since a quorum last acknowledged this leader.",
                ms as f64 / 1000.0,
            );
        }
        e.counter(
            "apitap_quota_deferred_shards_total",
            "Due shards held back by the per-namespace concurrent-shard quota, summed over scheduler ticks.",
            counters.quota_deferred_shards.get(),
        );
        e.counter(
            "apitap_leases_granted_total",
            "Shard leases this node granted as leader.",
            counters.leases_granted.get(),
        )
        .counter(
            "apitap_leases_expired_total",
            "Shard leases this node expired as leader (holder missed its heartbeats).",
            counters.leases_expired.get(),
        )
        .histogram(
            "apitap_lease_grant_duration_seconds",
            "Time to propose, commit and apply a lease grant.",
            &counters.lease_grant_seconds,
        );
        self.render_state(&mut e);
        e
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "i comes from position() in the same fixed-size table"
    )]
    fn render_state(&self, e: &mut Snapshot) {
        let node = self.node;
        let (pipelines, runs, shards, workers) = {
            let applied = node.state.read().unwrap_or_else(|p| p.into_inner());
            let st = &applied.state;
            let mut runs = [0u64; RUN_STATES.len()];
            let mut shards = [0u64; SHARD_STATES.len()];
            for run in st.runs.values() {
                if let Some(i) = RUN_STATES.iter().position(|s| *s == run.state) {
                    runs[i] += 1;
                }
                for s in &run.shards {
                    if let Some(i) = SHARD_STATES.iter().position(|x| *x == s.state) {
                        shards[i] += 1;
                    }
                }
            }
            (st.pipelines.len(), runs, shards, st.workers.len())
        };
        let live_workers = {
            let live = node.liveness.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            live.workers
                .keys()
                .filter(|w| live.is_live(w, node.config.lease_ttl, now))
                .count()
        };
        e.gauge("apitap_pipelines", "Stored pipelines.", pipelines as f64)
            .gauge_by(
                "apitap_runs",
                "Runs by state.",
                "state",
                RUN_STATES
                    .iter()
                    .zip(runs)
                    .map(|(s, n)| (s.as_str(), n as f64)),
            )
            .gauge_by(
                "apitap_shards",
                "Shards of all runs by state.",
                "state",
                SHARD_STATES
                    .iter()
                    .zip(shards)
                    .map(|(s, n)| (s.as_str(), n as f64)),
            )
            .gauge(
                "apitap_workers_registered",
                "Workers registered in the replicated state.",
                workers as f64,
            )
            .gauge(
                "apitap_workers_live",
                "Leader only: workers that heartbeated within a lease TTL.",
                live_workers as f64,
            );
        self.render_rate_limits(e);
    }

    /// One sample per configured rate-limit key (keys are set by operators, so bounded).
    #[allow(
        clippy::indexing_slicing,
        reason = "usage is built from limits, so both have one entry per key and i < limits.len()"
    )]
    fn render_rate_limits(&self, e: &mut Snapshot) {
        let node = self.node;
        let limits: Vec<_> = {
            let applied = node.state.read().unwrap_or_else(|p| p.into_inner());
            applied.state.rate_limits.values().cloned().collect()
        };
        let now = Instant::now();
        let now_ms = apitap_common::time::now_ms();
        let usage: Vec<_> = {
            let budgets = node.budgets.lock().unwrap_or_else(|p| p.into_inner());
            limits.iter().map(|l| budgets.usage(&l.key, now)).collect()
        };
        let by_key = |f: &dyn Fn(usize) -> f64| -> Vec<(&str, f64)> {
            limits
                .iter()
                .enumerate()
                .map(|(i, l)| (l.key.as_str(), f(i)))
                .collect()
        };
        e.gauge_by(
            "apitap_ratelimit_limit_rps",
            "Configured limit per key (requests/s, whole fleet).",
            "key",
            by_key(&|i| limits[i].rps),
        )
        .gauge_by(
            "apitap_ratelimit_granted_rps",
            "Leader only: shares granted and unexpired per key.",
            "key",
            by_key(&|i| usage[i].granted_rps),
        )
        .gauge_by(
            "apitap_ratelimit_used_last_second",
            "Leader only: requests workers reported for the last second.",
            "key",
            by_key(&|i| usage[i].used_last_second as f64),
        )
        .gauge_by(
            "apitap_ratelimit_workers",
            "Leader only: workers holding a share per key.",
            "key",
            by_key(&|i| f64::from(usage[i].workers)),
        )
        .gauge_by(
            "apitap_ratelimit_backoff_seconds",
            "Time left of a key's cluster-wide back-off (an upstream 429).",
            "key",
            by_key(&|i| limits[i].backoff_until_ms.saturating_sub(now_ms) as f64 / 1000.0),
        );
    }
}

/// Counts leader changes from Raft's metrics channel until shutdown.
pub async fn watch_leader(node: Arc<Node>, mut shutdown: ShutdownSignal) {
    let mut rx = node.raft.metrics();
    let mut last: Option<(u64, u64)> = None;
    loop {
        let seen = {
            let m = rx.borrow_and_update();
            m.current_leader.map(|l| (l, m.current_term))
        };
        if seen.is_some() && seen != last {
            node.metrics.leader_changes.inc();
            last = seen;
        }
        if let Some((leader, term)) = seen {
            node.history
                .elections
                .observe(term, Some(leader), apitap_common::time::now_ms());
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}
