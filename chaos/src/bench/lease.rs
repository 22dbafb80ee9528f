//! Benchmarks of shard leases on one coordinator. Like [`crate::bench::raft`], they print
//! JSON lines on stdout and a short summary on stderr; they are not tests.
//!
//! - [`reassign`] (`apitap-chaos bench reassign`): 3 real workers run a slow sharded
//!   pipeline into a throwaway PostgreSQL; again and again, SIGKILL a worker that holds
//!   leases and time kill → the first commit of one of its shards by another worker, read
//!   from the sink's `apitap_checkpoints` table (polled every 20 ms): a row of a victim's
//!   shard with a higher fence than the victim's lease and more records. Expected: about
//!   the lease TTL, plus a scheduler tick, a heartbeat, the claim and one page. A kill
//!   comes once every lease of the run has been claimed for a second (so the victim has
//!   renewed all its leases) and then at a random phase of the victim's heartbeat cycle.
//!   Killing a worker before its first heartbeat that renews a new lease is another case:
//!   the lease then expires while the dead worker still counts as live, and the shard can
//!   go back to the dead worker for one more TTL.
//! - [`grants`] (`apitap-chaos bench grants`): no real workers; simulated workers speak
//!   the gRPC `WorkerService` in this process (register, heartbeat, complete every new
//!   lease at once) while the leader grants the shards of one large run; lease grants per
//!   second and the run's completion time.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apitap_proto::v1::worker_service_client::WorkerServiceClient;
use apitap_proto::v1::{
    ClusterStatusRequest, ClusterStatusResponse, CompleteShardRequest, HeartbeatRequest, LeaseRef,
    RegisterRequest, RunInfo, StartRunRequest,
};
use rand::Rng;
use serde_json::{json, Value};
use sqlx::Row;
use tonic::transport::Channel;

use super::control::{
    channel_with, control, control_as, get_run, ms, r1, submit, Control, PROFILE,
};
use crate::mock_api::{Fault, FaultSpec};
use crate::stats::summary;
use crate::testbed::grpc::status_of;
use crate::testbed::{wait, TempPostgres, TestCluster};

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

// ---------------------------------------------------------------------------------------
// bench reassign
// ---------------------------------------------------------------------------------------

/// Options of [`reassign`].
pub struct ReassignBench {
    pub kills: u32,
    /// `--lease-ttl` of the coordinator.
    pub lease_ttl: Duration,
    /// Shards of the run (fewer than the 3 workers' 12 slots, so that survivors have room).
    pub shards: u32,
    /// Latency the mock API adds to every page request.
    pub latency_ms: u64,
    /// Keep the processes' logs and data here (a new or empty folder) instead of a
    /// temporary directory.
    pub out: Option<std::path::PathBuf>,
}

const REASSIGN_WORKERS: usize = 3;
const REASSIGN_SLOTS: u32 = 4;
const REASSIGN_PAGE: u64 = 50;
/// Records per shard: with 50-record pages of 200 ms, a run lasts well over a minute.
const REASSIGN_PER_SHARD: u64 = 20_000;
const REASSIGN_PIPELINE: &str = "bench-reassign";
/// How long the state must stay steady (same victim, same leases, all claimed) before a
/// kill: two heartbeats, so that the victim has renewed every lease it holds.
const STEADY: Duration = Duration::from_secs(1);
/// The kill then waits a random 0..this many ms (one worker heartbeat interval).
const REASSIGN_PHASE_MS: u64 = 500;

/// One row of `apitap_checkpoints`.
#[derive(Debug, Clone, Copy)]
struct SinkRow {
    fence: u64,
    records: u64,
    /// `updated_at`, seconds since the Unix epoch (the commit transaction's start).
    updated_at: f64,
}

/// The checkpoint rows of `run_id`, by shard; empty until the table exists.
async fn sink_rows(pool: &sqlx::PgPool, run_id: u64) -> BTreeMap<u32, SinkRow> {
    let rows = sqlx::query(
        "SELECT shard, fence, records, EXTRACT(EPOCH FROM updated_at)::float8 \
         FROM apitap_checkpoints WHERE pipeline = $1 AND run_id = $2",
    )
    .bind(REASSIGN_PIPELINE)
    .bind(run_id as i64)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    rows.into_iter()
        .map(|r| {
            (
                r.get::<i64, _>(0) as u32,
                SinkRow {
                    fence: r.get::<i64, _>(1) as u64,
                    records: r.get::<i64, _>(2) as u64,
                    updated_at: r.get::<f64, _>(3),
                },
            )
        })
        .collect()
}

/// Worker ids the coordinator reports live, with ms since their last heartbeat.
async fn live_workers(addr: &str) -> BTreeMap<String, u64> {
    live_in(status_of(addr).await)
}

/// [`live_workers`] through `ctl` (a TLS cluster's user certificate and token).
async fn live_workers_via(ctl: &Control) -> BTreeMap<String, u64> {
    let status = ctl
        .clone()
        .cluster_status(ClusterStatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(anyhow::Error::from);
    live_in(status)
}

fn live_in(status: anyhow::Result<ClusterStatusResponse>) -> BTreeMap<String, u64> {
    status
        .map(|s| {
            s.workers
                .into_iter()
                .filter(|w| w.live)
                .map(|w| (w.worker_id, w.last_heartbeat_ms_ago))
                .collect()
        })
        .unwrap_or_default()
}

/// A worker chosen to be killed, and its leases: (shard, fence).
struct Victim {
    index: usize,
    id: String,
    leases: Vec<(u32, u64)>,
}

/// Picks a victim once the run is steady: no shard pending, every lease held by a live
/// worker and claimed in the sink (row fence = lease fence), and the victim has a shard
/// with at least a few seconds of work left. `None` when not steady (yet).
fn pick_victim(
    run: &RunInfo,
    rows: &BTreeMap<u32, SinkRow>,
    live: &BTreeMap<String, u64>,
    cluster: &TestCluster,
    kill: u32,
) -> Option<Victim> {
    let active: Vec<_> = run
        .shards
        .iter()
        .filter(|s| !is_terminal(&s.state))
        .collect();
    if active.is_empty() || active.iter().any(|s| s.state != "leased") {
        return None;
    }
    if active.iter().any(|s| {
        !live.contains_key(&s.worker) || rows.get(&s.index).map(|r| r.fence) != Some(s.fence)
    }) {
        return None;
    }
    let margin = REASSIGN_PER_SHARD.saturating_sub(1000);
    let mut by_worker: BTreeMap<&str, Vec<(u32, u64)>> = BTreeMap::new();
    for s in &active {
        by_worker
            .entry(s.worker.as_str())
            .or_default()
            .push((s.index, s.fence));
    }
    let n = cluster.workers.len();
    // Most leases first; among equals, rotate with the kill number.
    let mut order: Vec<usize> = (0..n).map(|i| (i + kill as usize) % n).collect();
    order.sort_by_key(|i| {
        std::cmp::Reverse(
            by_worker
                .get(cluster.workers[*i].id.as_str())
                .map_or(0, Vec::len),
        )
    });
    order.into_iter().find_map(|i| {
        let id = &cluster.workers[i].id;
        let leases = by_worker.get(id.as_str())?;
        let work_left = leases
            .iter()
            .any(|(shard, _)| rows.get(shard).is_some_and(|r| r.records < margin));
        (cluster.workers[i].proc.is_some() && work_left).then(|| Victim {
            index: i,
            id: id.clone(),
            leases: leases.clone(),
        })
    })
}

/// The victim the run has been steady with: its id, its leases, and since when.
type Steady = (String, Vec<(u32, u64)>, Instant);

/// What one kill measured.
struct Reassigned {
    shard: u32,
    old_fence: u64,
    new_fence: u64,
    records_before: u64,
    records_after: u64,
    claim_ms: f64,
    commit_ms: f64,
    commit_db_ms: f64,
}

/// `bench reassign`: see the module doc. Prints one JSON line per kill and returns the
/// summary (kill → claim, kill → first commit on another worker, their p50/p99/max).
pub async fn reassign(b: ReassignBench) -> anyhow::Result<Value> {
    anyhow::ensure!(b.kills > 0, "--kills must be at least 1");
    anyhow::ensure!(
        b.shards >= 1 && b.shards <= (REASSIGN_WORKERS as u32 - 1) * REASSIGN_SLOTS,
        "--shards must be between 1 and {} (what two surviving workers can hold)",
        (REASSIGN_WORKERS as u32 - 1) * REASSIGN_SLOTS
    );
    let pg = TempPostgres::start()?;
    let records = b.shards as u64 * REASSIGN_PER_SHARD;
    let mut builder = TestCluster::builder()
        .coordinators(1)
        .workers(REASSIGN_WORKERS)
        .slots(REASSIGN_SLOTS)
        .records(records)
        .lease_ttl(b.lease_ttl);
    if let Some(dir) = &b.out {
        anyhow::ensure!(
            std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none()),
            "{} is not empty (the coordinator would resume its old state)",
            dir.display()
        );
        builder = builder.out_dir(dir);
    }
    let mut cluster = builder.start().await?;
    cluster.mock.state().push_fault(FaultSpec {
        fault: Fault::Latency { ms: b.latency_ms },
        count: 100_000_000,
    });
    let addr = cluster.coordinator_addrs()[0].clone();
    let mut ctl = control(&addr).await?;
    let pool = sqlx::PgPool::connect(&pg.url()).await?;
    let yaml = format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata:
  name: {REASSIGN_PIPELINE}
spec:
  shards: {{ param: ids, range: {{ start: 1, end: {records}, count: {shards} }} }}
  source:
    http:
      url: "{mock}/v1/limit_offset?from_id={{{{ shard.start }}}}&to_id={{{{ shard.end }}}}"
      records: $.data
      pagination: {{ kind: limit_offset, size: {REASSIGN_PAGE} }}
  sink:
    postgres: {{ url: "{url}", table: bench_reassign }}
"#,
        shards = b.shards,
        mock = cluster.mock.url(),
        url = pg.url(),
    );
    let mut run_id = submit(&mut ctl, REASSIGN_PIPELINE, yaml).await?;
    let mut runs = vec![run_id];
    let ttl_ms = ms(b.lease_ttl);
    let (mut to_claim, mut to_commit, mut claim_to_commit, mut commit_db) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut missed = 0u32;

    for k in 1..=b.kills {
        // Steady state: every worker up and live, every shard of the run claimed.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut steady: Option<Steady> = None;
        let victim = loop {
            anyhow::ensure!(
                Instant::now() < deadline,
                "kill {k}: the run never settled (every shard leased and claimed) within 300 s"
            );
            let run = get_run(&mut ctl, run_id).await?;
            if is_terminal(&run.state) {
                anyhow::ensure!(
                    run.state == "succeeded",
                    "run {run_id} ended {}: {}",
                    run.state,
                    run.error
                );
                run_id = ctl
                    .start_run(StartRunRequest {
                        pipeline: REASSIGN_PIPELINE.into(),
                        namespace: String::new(),
                    })
                    .await?
                    .into_inner()
                    .run_id;
                runs.push(run_id);
                eprintln!(
                    "run {} succeeded; started run {run_id}",
                    runs[runs.len() - 2]
                );
                continue;
            }
            let live = live_workers(&addr).await;
            let rows = sink_rows(&pool, run_id).await;
            let picked = (live.len() == REASSIGN_WORKERS)
                .then(|| pick_victim(&run, &rows, &live, &cluster, k))
                .flatten();
            match (picked, &steady) {
                (Some(v), Some((id, leases, since)))
                    if *id == v.id && *leases == v.leases && since.elapsed() >= STEADY =>
                {
                    break v;
                }
                (Some(v), Some((id, leases, _))) if *id == v.id && *leases == v.leases => {}
                (Some(v), _) => steady = Some((v.id, v.leases, Instant::now())),
                (None, _) => steady = None,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Kill at a random phase of the victim's heartbeat cycle.
        let delay = Duration::from_millis(rand::thread_rng().gen_range(0..REASSIGN_PHASE_MS));
        tokio::time::sleep(delay).await;

        let since_heartbeat = live_workers(&addr).await.get(&victim.id).copied();
        let killed_wall = unix_secs();
        let killed_at = Instant::now();
        cluster
            .worker_proc(victim.index)
            .expect("victim is running")
            .kill();
        cluster.workers[victim.index].proc = None;

        // What the victim committed (it is dead: this no longer changes).
        let base = sink_rows(&pool, run_id).await;
        let base_records = |shard: u32| base.get(&shard).map_or(0, |r| r.records);
        let mut claimed: BTreeMap<u32, Instant> = BTreeMap::new();
        let limit = b.lease_ttl + Duration::from_secs(60);
        let mut next = Instant::now();
        let found = loop {
            let rows = sink_rows(&pool, run_id).await;
            let now = Instant::now();
            let mut hit = None;
            for &(shard, fence) in &victim.leases {
                let Some(r) = rows.get(&shard) else { continue };
                if r.fence > fence {
                    claimed.entry(shard).or_insert(now);
                    if r.records > base_records(shard) && hit.is_none() {
                        hit = Some(Reassigned {
                            shard,
                            old_fence: fence,
                            new_fence: r.fence,
                            records_before: base_records(shard),
                            records_after: r.records,
                            claim_ms: ms(claimed[&shard] - killed_at),
                            commit_ms: ms(now - killed_at),
                            commit_db_ms: (r.updated_at - killed_wall) * 1000.0,
                        });
                    }
                }
            }
            if hit.is_some() || now - killed_at > limit {
                break hit;
            }
            next += Duration::from_millis(20);
            tokio::time::sleep_until(next.max(Instant::now()).into()).await;
        };

        match found {
            Some(m) => {
                let holder = get_run(&mut ctl, run_id)
                    .await?
                    .shards
                    .into_iter()
                    .find(|s| s.index == m.shard)
                    .map(|s| s.worker)
                    .unwrap_or_default();
                anyhow::ensure!(
                    holder != victim.id,
                    "shard {} committed again by the killed {}",
                    m.shard,
                    victim.id
                );
                println!(
                    "{}",
                    json!({
                        "bench": "reassign", "kill": k, "run_id": run_id,
                        "victim": victim.id, "victim_leases": victim.leases.len(),
                        "since_heartbeat_ms": since_heartbeat, "kill_delay_ms": delay.as_millis() as u64,
                        "shard": m.shard, "old_fence": m.old_fence, "new_fence": m.new_fence,
                        "new_worker": holder,
                        "records_before": m.records_before, "records_after": m.records_after,
                        "claim_ms": r1(m.claim_ms), "commit_ms": r1(m.commit_ms),
                        "commit_db_ms": r1(m.commit_db_ms),
                        "lease_ttl_ms": ttl_ms,
                    })
                );
                eprintln!(
                    "kill {k}/{}: {} ({} lease(s), last heartbeat {} ms before) → shard {} claimed by {holder} at {:.0} ms, first commit at {:.0} ms (TTL {:.0} ms)",
                    b.kills,
                    victim.id,
                    victim.leases.len(),
                    since_heartbeat.map_or("?".into(), |v| v.to_string()),
                    m.shard,
                    m.claim_ms,
                    m.commit_ms,
                    ttl_ms,
                );
                to_claim.push(m.claim_ms);
                to_commit.push(m.commit_ms);
                claim_to_commit.push(m.commit_ms - m.claim_ms);
                commit_db.push(m.commit_db_ms);
            }
            None => {
                missed += 1;
                println!(
                    "{}",
                    json!({"bench": "reassign", "kill": k, "run_id": run_id, "victim": victim.id, "missed": true})
                );
                eprintln!(
                    "kill {k}/{}: no commit of {}'s shards by another worker within {limit:?}",
                    b.kills, victim.id
                );
            }
        }

        tokio::task::block_in_place(|| cluster.start_worker(victim.index))?;
        wait::until_async(
            "the restarted worker to be live",
            Duration::from_secs(60),
            || {
                let addr = addr.clone();
                async move { (live_workers(&addr).await.len() == REASSIGN_WORKERS).then_some(()) }
            },
        )
        .await?;
    }

    let commit = summary(&to_commit);
    let out = json!({
        "bench": "reassign",
        "coordinators": 1,
        "workers": REASSIGN_WORKERS,
        "slots": REASSIGN_SLOTS,
        "shards": b.shards,
        "page_size": REASSIGN_PAGE,
        "source_latency_ms": b.latency_ms,
        "lease_ttl_ms": ttl_ms,
        "kills": b.kills,
        "measured": to_commit.len(),
        "missed": missed,
        "runs": runs,
        "kill_to_claim_ms": summary(&to_claim),
        "kill_to_commit_ms": commit,
        "claim_to_commit_ms": summary(&claim_to_commit),
        "kill_to_commit_db_ms": summary(&commit_db),
        "profile": PROFILE,
    });
    eprintln!(
        "reassign over {} kills (lease TTL {ttl_ms:.0} ms): first commit on another worker p50 {} / p99 {} / max {} ms; claim p50 {} ms; claim → commit p50 {} ms; {missed} missed",
        to_commit.len(),
        out["kill_to_commit_ms"]["p50"],
        out["kill_to_commit_ms"]["p99"],
        out["kill_to_commit_ms"]["max"],
        out["kill_to_claim_ms"]["p50"],
        out["claim_to_commit_ms"]["p50"],
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// bench grants
// ---------------------------------------------------------------------------------------

/// Options of [`grants`].
pub struct GrantsBench {
    pub workers: usize,
    pub shards: u32,
    /// Slots each simulated worker registers with.
    pub slots: u32,
    /// Mutual TLS with a certificate per simulated worker, tokens and sealed secrets.
    pub tls: bool,
}

/// What one simulated worker saw.
#[derive(Default)]
struct SimStats {
    /// When each new lease first appeared in a heartbeat response.
    grants: Vec<Instant>,
    /// When each accepted completion was acknowledged.
    completed: Vec<Instant>,
    heartbeat_ms: Vec<f64>,
    complete_ms: Vec<f64>,
    rejected: u64,
    errors: u64,
}

/// A worker in this process: heartbeats every `interval` reporting the leases it still
/// holds, and completes every new lease at once (concurrently) with ok = true.
async fn sim_worker(
    id: String,
    mut client: WorkerServiceClient<Channel>,
    slots: u32,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> SimStats {
    let mut st = SimStats::default();
    let mut seen: HashSet<(u64, u32, u64)> = HashSet::new();
    let mut held: Vec<LeaseRef> = Vec::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let t = Instant::now();
        let resp = client
            .heartbeat(HeartbeatRequest {
                worker_id: id.clone(),
                held: held.clone(),
                free_slots: slots.saturating_sub(held.len() as u32),
                draining: false,
                instance: String::new(),
                waits: Vec::new(),
            })
            .await;
        let resp = match resp {
            Ok(r) => r.into_inner(),
            Err(_) => {
                st.errors += 1;
                continue;
            }
        };
        let now = Instant::now();
        st.heartbeat_ms.push(ms(now - t));
        if !resp.registered {
            st.errors += 1;
            let _ = client
                .register(RegisterRequest {
                    worker_id: id.clone(),
                    addr: format!("sim://{id}"),
                    slots,
                    instance: String::new(),
                })
                .await;
            continue;
        }
        for l in resp.leases {
            if seen.insert((l.run_id, l.shard, l.fence)) {
                st.grants.push(now);
                held.push(LeaseRef {
                    run_id: l.run_id,
                    shard: l.shard,
                    fence: l.fence,
                });
            }
        }
        let mut set = tokio::task::JoinSet::new();
        for lease in held.clone() {
            let mut c = client.clone();
            let worker_id = id.clone();
            set.spawn(async move {
                let t = Instant::now();
                let r = c
                    .complete_shard(CompleteShardRequest {
                        worker_id,
                        lease: Some(lease),
                        ok: true,
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner().accepted);
                (lease, t, Instant::now(), r)
            });
        }
        while let Some(res) = set.join_next().await {
            let Ok((lease, t, done, r)) = res else {
                st.errors += 1;
                continue;
            };
            match r {
                Ok(accepted) => {
                    st.complete_ms.push(ms(done - t));
                    if accepted {
                        st.completed.push(done);
                    } else {
                        st.rejected += 1;
                    }
                    held.retain(|h| *h != lease);
                }
                Err(_) => st.errors += 1,
            }
        }
    }
    st
}

/// `bench grants`: see the module doc. Returns grants/s (over the run, and per second
/// while granting), the run's completion time and the RPC latencies the workers saw.
pub async fn grants(b: GrantsBench) -> anyhow::Result<Value> {
    anyhow::ensure!(
        b.workers > 0 && b.shards > 0 && b.slots > 0,
        "--workers, --shards and --slots must be at least 1"
    );
    let mut builder = TestCluster::builder().coordinators(1).workers(0);
    if b.tls {
        builder = builder.tls();
    }
    let cluster = builder.start().await?;
    let addr = cluster.coordinator_addrs()[0].clone();
    let user_tls = cluster.certs.as_ref().map(|c| c.client_tls()).transpose()?;
    let mut ctl = control_as(&addr, user_tls.as_ref(), cluster.token()).await?;

    // Register every simulated worker (one connection each, as real workers have), each
    // with a certificate of its own on a TLS cluster.
    let mut clients = Vec::new();
    let (mut interval_ms, mut ttl_ms) = (0, 0);
    for i in 0..b.workers {
        let id = format!("sim-{:03}", i + 1);
        let tls = match &cluster.certs {
            Some(certs) => Some(certs.worker_tls(&id)?),
            None => None,
        };
        let mut c = WorkerServiceClient::new(channel_with(&addr, tls.as_ref()).await?);
        let reg = c
            .register(RegisterRequest {
                worker_id: id.clone(),
                addr: format!("sim://{id}"),
                slots: b.slots,
                instance: String::new(),
            })
            .await?
            .into_inner();
        (interval_ms, ttl_ms) = (reg.heartbeat_interval_ms, reg.lease_ttl_ms);
        clients.push((id, c));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (id, c) in clients {
        tasks.push(tokio::spawn(sim_worker(
            id,
            c,
            b.slots,
            Duration::from_millis(interval_ms.max(50)),
            stop.clone(),
        )));
    }
    wait::until_async(
        &format!("{} live simulated workers", b.workers),
        Duration::from_secs(60),
        || {
            let (ctl, want) = (ctl.clone(), b.workers);
            async move { (live_workers_via(&ctl).await.len() >= want).then_some(()) }
        },
    )
    .await?;

    let yaml = format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: bench-grants }}
spec:
  shards: {{ param: ids, range: {{ start: 1, end: {end}, count: {shards} }} }}
  source:
    http:
      url: "http://127.0.0.1:9/v1/cursor?from_id={{{{ shard.start }}}}&to_id={{{{ shard.end }}}}"
  sink:
    sqlite: {{ path: /tmp/apitap-unused.db, table: t }}
"#,
        end = b.shards as u64 * 10,
        shards = b.shards,
    );
    let submitted = Instant::now();
    let run_id = submit(&mut ctl, "bench-grants", yaml).await?;
    let info = wait::until_async(
        "the grants run to finish",
        Duration::from_secs(1800),
        || {
            let mut ctl = ctl.clone();
            async move {
                let r = get_run(&mut ctl, run_id).await.ok()?;
                is_terminal(&r.state).then_some(r)
            }
        },
    )
    .await?;
    let observed_end = submitted.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut all = SimStats::default();
    for t in tasks {
        let s = t.await?;
        all.grants.extend(s.grants);
        all.completed.extend(s.completed);
        all.heartbeat_ms.extend(s.heartbeat_ms);
        all.complete_ms.extend(s.complete_ms);
        all.rejected += s.rejected;
        all.errors += s.errors;
    }
    anyhow::ensure!(
        info.state == "succeeded",
        "grants run {run_id} ended {}: {}",
        info.state,
        info.error
    );
    let succeeded = info
        .shards
        .iter()
        .filter(|s| s.state == "succeeded")
        .count();
    let attempts: u64 = info.shards.iter().map(|s| s.attempts as u64).sum();
    all.grants.sort();
    all.completed.sort();
    let first = all.grants.first().copied().unwrap_or(submitted);
    let last_grant = all.grants.last().copied().unwrap_or(submitted);
    let done = all.completed.last().copied().unwrap_or(submitted);
    // Submit → the last completion acknowledged (the one that ended the run).
    let run_secs = (done - submitted).as_secs_f64();
    let window = (last_grant - first).as_secs_f64();
    // Grants observed in each whole second from the first one on.
    let mut per_second = vec![0f64; window.floor() as usize];
    for g in &all.grants {
        if let Some(c) = per_second.get_mut((*g - first).as_secs() as usize) {
            *c += 1.0;
        }
    }
    let n = all.grants.len();
    let out = json!({
        "bench": "grants",
        "tls": b.tls,
        "coordinators": 1,
        "workers": b.workers,
        "slots": b.slots,
        "shards": b.shards,
        "heartbeat_interval_ms": interval_ms,
        "lease_ttl_ms": ttl_ms,
        "run_id": run_id,
        "grants": n,
        "attempts": attempts,
        "regrants": attempts.saturating_sub(b.shards as u64),
        "shards_succeeded": succeeded,
        "run_seconds": (run_secs * 1000.0).round() / 1000.0,
        "run_seconds_polled": (observed_end.as_secs_f64() * 1000.0).round() / 1000.0,
        "first_grant_ms": r1(ms(first - submitted)),
        "grants_per_second": r1(n as f64 / run_secs),
        "grants_per_second_window": r1(if window > 0.0 { (n as f64 - 1.0) / window } else { 0.0 }),
        "grants_each_second": summary(&per_second),
        "slot_bound_per_second": r1((b.workers as u64 * b.slots as u64) as f64 * 1000.0 / interval_ms.max(1) as f64),
        "heartbeat_rpc_ms": summary(&all.heartbeat_ms),
        "complete_rpc_ms": summary(&all.complete_ms),
        "rejected_completions": all.rejected,
        "rpc_errors": all.errors,
        "profile": PROFILE,
    });
    eprintln!(
        "grants, {} workers × {} slots, {} shards, heartbeat {interval_ms} ms: {n} grants in {run_secs:.2} s = {} grants/s (each second p50 {} / max {}; slot-cycle bound {}/s); CompleteShard p50 {} ms; {} regrants, {} errors",
        b.workers,
        b.slots,
        b.shards,
        out["grants_per_second"],
        out["grants_each_second"]["p50"],
        out["grants_each_second"]["max"],
        out["slot_bound_per_second"],
        out["complete_rpc_ms"]["p50"],
        out["regrants"],
        all.errors,
    );
    Ok(out)
}
