//! What the drill watches while faults go on, each in its own polling task:
//!
//! - every coordinator's own status (term, leader) → time to a new leader;
//! - the runs' shards (through the leader, as `apitapctl describe run` shows them) → time
//!   to reassign a shard, and at most one holder per (shard, fence);
//! - the sink's `apitap_checkpoints` rows → checkpoints never go back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apitap_proto::auth::AuthChannel;
use apitap_proto::v1::control_service_client::ControlServiceClient;
use apitap_proto::v1::{ClusterStatusRequest, GetRunRequest, RunInfo};
use tokio::task::JoinHandle;

use crate::testbed::grpc::Caller;
use crate::testbed::SinkReader;

/// At most this many violations of one sampler are kept verbatim (the rest are counted).
const MAX_KEPT: usize = 20;

/// A coordinator's view of the leadership, recorded when it changes.
#[derive(Debug, Clone)]
pub struct StatusObs {
    pub at: Instant,
    pub node: u64,
    pub term: u64,
    pub leader_id: u64,
}

impl StatusObs {
    pub fn is_leader(&self) -> bool {
        self.leader_id != 0 && self.leader_id == self.node
    }
}

/// A shard's lease as the leader reported it, recorded when it changes.
#[derive(Debug, Clone)]
pub struct ShardObs {
    pub at: Instant,
    pub fence: u64,
    pub worker: String,
    pub state: String,
}

/// The last row of `apitap_checkpoints` seen for a shard.
#[derive(Debug, Clone, Copy)]
struct CheckpointObs {
    fence: i64,
    records: i64,
    pages: i64,
}

#[derive(Debug, Default)]
pub struct Observations {
    pub status: Vec<StatusObs>,
    pub status_samples: u64,
    /// Time between status sweeps in which no reachable coordinator said it leads,
    /// counted from the first sweep that found a leader.
    pub leaderless: Duration,
    /// (run, shard) → its changes.
    pub shards: BTreeMap<(u64, u32), Vec<ShardObs>>,
    pub runs: BTreeMap<u64, RunInfo>,
    pub run_samples: u64,
    /// (run, shard, fence) → every worker seen holding it.
    pub holders: HashMap<(u64, u32, u64), BTreeSet<String>>,
    pub checkpoint_samples: u64,
    checkpoints: HashMap<(String, i64, i64), CheckpointObs>,
    pub violations: Vec<String>,
    /// Violations beyond [`MAX_KEPT`].
    pub violations_dropped: u64,
}

impl Observations {
    fn violation(&mut self, v: String) {
        if self.violations.len() < MAX_KEPT {
            self.violations.push(v);
        } else {
            self.violations_dropped += 1;
        }
    }

    /// Leases `worker` held at the last sample: (run, shard, fence).
    pub fn leases_of(&self, worker: &str) -> Vec<(u64, u32, u64)> {
        self.shards
            .iter()
            .filter_map(|(k, obs)| {
                let last = obs.last()?;
                (last.state == "leased" && last.worker == worker).then_some((k.0, k.1, last.fence))
            })
            .collect()
    }

    /// Workers holding at least one lease at the last sample.
    pub fn busy_workers(&self) -> BTreeSet<String> {
        self.shards
            .values()
            .filter_map(|obs| obs.last())
            .filter(|o| o.state == "leased" && !o.worker.is_empty())
            .map(|o| o.worker.clone())
            .collect()
    }

    /// When the shard was first seen under a fence above `fence`, at or after `since`.
    pub fn regranted_at(
        &self,
        run: u64,
        shard: u32,
        fence: u64,
        since: Instant,
    ) -> Option<Instant> {
        self.shards
            .get(&(run, shard))?
            .iter()
            .find(|o| o.fence > fence && o.at >= since && o.state != "pending")
            .map(|o| o.at)
    }

    /// When a coordinator first reported itself leader of a term above `term`, after `since`.
    pub fn new_leader_at(&self, term: u64, since: Instant) -> Option<(Instant, u64)> {
        self.status
            .iter()
            .find(|o| o.at >= since && o.term > term && o.is_leader())
            .map(|o| (o.at, o.node))
    }
}

pub type Shared = Arc<Mutex<Observations>>;

/// The polling tasks; [`Samplers::stop`] ends them.
pub struct Samplers {
    pub obs: Shared,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Samplers {
    /// `nodes`: (node id, gRPC address) of every coordinator; `runs`: the run ids to watch;
    /// `caller`: who the samplers are to the coordinators (a viewer on a TLS cluster).
    pub fn start(
        nodes: Vec<(u64, String)>,
        runs: Vec<u64>,
        sink: SinkReader,
        caller: &Caller,
    ) -> anyhow::Result<Self> {
        let obs: Shared = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let addrs: Vec<String> = nodes.iter().map(|(_, a)| a.clone()).collect();
        let leader = caller.leader_client(addrs, Duration::from_secs(3))?;
        let clients = status_clients(&nodes, caller)?;
        let tasks = vec![
            tokio::spawn(status_loop(clients, obs.clone(), stop.clone())),
            tokio::spawn(run_loop(leader, runs, obs.clone(), stop.clone())),
            tokio::spawn(checkpoint_loop(sink, obs.clone(), stop.clone())),
        ];
        Ok(Self { obs, stop, tasks })
    }

    /// Stops the tasks after their current sample.
    pub async fn stop(self) -> Shared {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.obs
    }
}

/// Locks the observations even if a sampler panicked while holding them.
pub fn lock_obs(obs: &Shared) -> std::sync::MutexGuard<'_, Observations> {
    obs.lock().unwrap_or_else(|p| p.into_inner())
}

type Control = ControlServiceClient<AuthChannel>;

/// One lazily (re)connecting channel per node, each dialled directly (never through a
/// fault proxy): polling must cost the nodes little, and a node's own view is wanted.
fn status_clients(nodes: &[(u64, String)], caller: &Caller) -> anyhow::Result<Vec<(u64, Control)>> {
    nodes
        .iter()
        .map(|(id, addr)| {
            let channel = caller
                .endpoint(addr)?
                .connect_timeout(Duration::from_millis(300))
                .timeout(Duration::from_millis(400))
                .connect_lazy();
            Ok((*id, caller.control(channel)))
        })
        .collect()
}

async fn status_loop(clients: Vec<(u64, Control)>, obs: Shared, stop: Arc<AtomicBool>) {
    let mut last: HashMap<u64, (u64, u64)> = HashMap::new();
    // The previous sweep, once a leader was seen, and whether it found one.
    let mut previous: Option<(Instant, bool)> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut polls = tokio::task::JoinSet::new();
        for (id, client) in clients.iter().cloned() {
            polls.spawn(async move {
                let mut client = client;
                let s = client.cluster_status(ClusterStatusRequest {}).await.ok();
                (id, s.map(|r| r.into_inner()))
            });
        }
        let results = polls.join_all().await;
        let at = Instant::now();
        let led = results.iter().any(|(node, s)| {
            s.as_ref()
                .is_some_and(|s| s.leader_id != 0 && s.leader_id == *node)
        });
        {
            let mut o = lock_obs(&obs);
            o.status_samples += 1;
            // A gap counts as leaderless when neither of its ends found a leader, and as
            // half when one end did.
            if let Some((prev_at, prev_led)) = previous {
                let gap = at - prev_at;
                o.leaderless += match (prev_led, led) {
                    (true, true) => Duration::ZERO,
                    (false, false) => gap,
                    _ => gap / 2,
                };
            }
            if led || previous.is_some() {
                previous = Some((at, led));
            }
            for (node, s) in results {
                let Some(s) = s else { continue };
                let now = (s.term, s.leader_id);
                if last.get(&node) != Some(&now) {
                    last.insert(node, now);
                    o.status.push(StatusObs {
                        at,
                        node,
                        term: s.term,
                        leader_id: s.leader_id,
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_loop(
    mut client: apitap_proto::client::LeaderClient,
    runs: Vec<u64>,
    obs: Shared,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        for run_id in &runs {
            let got = client
                .call(|ch| async move {
                    ControlServiceClient::new(ch)
                        .get_run(GetRunRequest { run_id: *run_id })
                        .await
                })
                .await;
            let Ok(info) = got else { continue };
            record_run(&mut lock_obs(&obs), info, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn record_run(o: &mut Observations, info: RunInfo, at: Instant) {
    o.run_samples += 1;
    for s in &info.shards {
        let key = (info.run_id, s.index);
        let changes = o.shards.entry(key).or_default();
        let changed = changes
            .last()
            .is_none_or(|l| l.fence != s.fence || l.worker != s.worker || l.state != s.state);
        if changed {
            changes.push(ShardObs {
                at,
                fence: s.fence,
                worker: s.worker.clone(),
                state: s.state.clone(),
            });
        }
        if s.state == "leased" && !s.worker.is_empty() {
            let holders = o
                .holders
                .entry((info.run_id, s.index, s.fence))
                .or_default();
            if holders.insert(s.worker.clone()) && holders.len() == 2 {
                let names: Vec<String> = holders.iter().cloned().collect();
                o.violation(format!(
                    "two holders of run {} shard {} fence {}: {}",
                    info.run_id,
                    s.index,
                    s.fence,
                    names.join(", ")
                ));
            }
        }
    }
    o.runs.insert(info.run_id, info);
}

async fn checkpoint_loop(sink: SinkReader, obs: Shared, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(rows) = sink.checkpoints().await {
            let mut o = lock_obs(&obs);
            o.checkpoint_samples += 1;
            for r in rows {
                let now = CheckpointObs {
                    fence: r.fence,
                    records: r.records,
                    pages: r.pages,
                };
                if let Some(prev) = o.checkpoints.insert(r.key.clone(), now) {
                    if now.fence < prev.fence
                        || now.records < prev.records
                        || now.pages < prev.pages
                    {
                        o.violation(format!(
                            "checkpoint of {} run {} shard {} went back: fence {} → {}, records {} → {}, pages {} → {}",
                            r.key.0, r.key.1, r.key.2, prev.fence, now.fence, prev.records, now.records, prev.pages, now.pages
                        ));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apitap_proto::v1::ShardInfo;

    fn run(shards: &[(u32, &str, u64, &str)]) -> RunInfo {
        RunInfo {
            run_id: 1,
            shards: shards
                .iter()
                .map(|(i, state, fence, worker)| ShardInfo {
                    index: *i,
                    state: state.to_string(),
                    fence: *fence,
                    worker: worker.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn regrants_and_double_holders_are_seen() {
        let mut o = Observations::default();
        let t0 = Instant::now();
        record_run(
            &mut o,
            run(&[(0, "leased", 10, "w1"), (1, "leased", 11, "w2")]),
            t0,
        );
        assert_eq!(o.leases_of("w1"), vec![(1, 0, 10)]);
        let t1 = t0 + Duration::from_secs(1);
        record_run(
            &mut o,
            run(&[(0, "pending", 10, "w1"), (1, "leased", 11, "w2")]),
            t1,
        );
        let t2 = t0 + Duration::from_secs(2);
        record_run(
            &mut o,
            run(&[(0, "leased", 20, "w2"), (1, "leased", 11, "w2")]),
            t2,
        );
        assert_eq!(o.regranted_at(1, 0, 10, t0), Some(t2));
        assert!(o.violations.is_empty());
        record_run(
            &mut o,
            run(&[(0, "leased", 20, "w3"), (1, "leased", 11, "w2")]),
            t2,
        );
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
    }
}
