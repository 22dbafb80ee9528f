//! Benchmarks of the Raft-replicated coordinator cluster (3 coordinators, no workers).
//! They print JSON lines on stdout and a short summary on stderr; they are not tests.
//!
//! - [`failover`] (`apitap-chaos bench failover`): SIGKILL (or SIGTERM) the leader while a
//!   client submits, optionally with busy CPU cores beside the cluster; time until a
//!   surviving node reports a new leader, until the first acknowledged submit and (SIGTERM)
//!   until the old leader exited; every acknowledged submit must still be stored.
//! - [`submit`] (`apitap-chaos bench submit`): committed submits per second and their
//!   latency with N concurrent clients.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apitap_proto::client::LeaderClient;
use apitap_proto::v1::control_service_client::ControlServiceClient;
use apitap_proto::v1::SubmitPipelineRequest;
use serde_json::{json, Value};

use crate::stats::summary;
use crate::testbed::grpc::{status_of, tiny_pipeline, Submitter};
use crate::testbed::{wait, TestCluster};

const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn three_nodes() -> anyhow::Result<TestCluster> {
    TestCluster::builder()
        .coordinators(3)
        .workers(0)
        .start()
        .await
}

/// Index of the node that reports itself leader.
async fn find_leader(addrs: &[String]) -> anyhow::Result<usize> {
    wait::until_async("a leader", Duration::from_secs(30), move || async move {
        for (i, a) in addrs.iter().enumerate() {
            if let Ok(s) = status_of(a).await {
                if s.leader_id != 0 && s.leader_id == s.node_id {
                    return Some(i);
                }
            }
        }
        None
    })
    .await
}

/// The highest Raft term any reachable node reports (0 if none answers).
async fn max_term(addrs: &[String]) -> u64 {
    let mut term = 0;
    for a in addrs {
        if let Ok(s) = status_of(a).await {
            term = term.max(s.term);
        }
    }
    term
}

/// Waits until every node reports the same applied index and state digest.
async fn converged(addrs: &[String], timeout: Duration) -> anyhow::Result<u64> {
    wait::until_async(
        "all nodes to agree on the state",
        timeout,
        move || async move {
            let mut seen = BTreeSet::new();
            for a in addrs {
                let s = status_of(a).await.ok()?;
                seen.insert((s.applied_index, s.state_digest));
            }
            (seen.len() == 1).then(|| seen.into_iter().next().unwrap().0)
        },
    )
    .await
}

/// One acknowledged submit of the failover client, and the node that acknowledged it.
struct Ack {
    name: String,
    at: Instant,
    node: String,
}

/// A client submitting tiny pipelines in a loop (like `Submitter`, but remembering which
/// node acknowledged each one, so an ack the killed leader sent just before it died is not
/// mistaken for the first write after the failover).
struct LoopClient {
    acked: Arc<Mutex<Vec<Ack>>>,
    failed: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopClient {
    fn start(addrs: Vec<String>) -> Self {
        let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let failed: Arc<AtomicU64> = Arc::default();
        let paused: Arc<AtomicBool> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (a, f, p, s) = (acked.clone(), failed.clone(), paused.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut client = LeaderClient::new(addrs, Duration::from_secs(30));
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                if p.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let name = format!("failover-{i}");
                i += 1;
                let req = SubmitPipelineRequest {
                    spec_yaml: tiny_pipeline(&name),
                    start_run: false,
                    file: format!("{name}.yaml"),
                    ..Default::default()
                };
                let res = client
                    .call(|ch| {
                        let req = req.clone();
                        async move { ControlServiceClient::new(ch).submit_pipeline(req).await }
                    })
                    .await;
                match res {
                    Ok(_) => a.lock().unwrap().push(Ack {
                        name,
                        at: Instant::now(),
                        node: client.current().to_string(),
                    }),
                    Err(_) => {
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Self {
            acked,
            failed,
            paused,
            stop,
            task,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// When the first submit acknowledged after `t` by a node other than `not` arrived.
    fn first_ack_after(&self, t: Instant, not: &str) -> Option<Instant> {
        let acked = self.acked.lock().unwrap();
        acked
            .iter()
            .find(|a| a.at > t && a.node != not)
            .map(|a| a.at)
    }
}

/// `bench failover` settings.
#[derive(Debug, Clone, Copy)]
pub struct FailoverBench {
    pub kills: u32,
    /// CPU cores kept busy beside the cluster the whole time.
    pub cpu_hog: usize,
    /// SIGTERM instead of SIGKILL: the leader hands off leadership and exits.
    pub graceful: bool,
}

/// What one leader loss took.
struct Loss {
    new_leader: u64,
    term: u64,
    leader_ms: f64,
    /// SIGTERM to exit (graceful only).
    exit_ms: Option<f64>,
}

/// Takes the leader `victim` away (SIGKILL, or SIGTERM when `graceful`) and polls, every
/// 10 ms, until a survivor reports a new leader and, after a SIGTERM, the victim exited.
async fn lose_leader(
    cluster: &mut TestCluster,
    addrs: &[String],
    victim: usize,
    graceful: bool,
) -> anyhow::Result<Loss> {
    let victim_id = cluster.coordinators[victim].id;
    let at = Instant::now();
    let proc = cluster.coordinator_proc(victim).expect("running");
    if graceful {
        proc.signal(libc::SIGTERM);
    } else {
        proc.kill();
    }
    let (mut leader, mut exit_ms) = (None, (!graceful).then_some(0.0));
    while leader.is_none() || exit_ms.is_none() {
        anyhow::ensure!(
            at.elapsed() < Duration::from_secs(60),
            "60 s after losing node {victim_id}: new leader {leader:?}, exited {exit_ms:?}"
        );
        if exit_ms.is_none()
            && cluster
                .coordinator_proc(victim)
                .and_then(|p| p.try_wait())
                .is_some()
        {
            exit_ms = Some(ms(at.elapsed()));
        }
        for (i, a) in addrs.iter().enumerate() {
            if i == victim || leader.is_some() {
                continue;
            }
            if let Ok(s) = status_of(a).await {
                if s.leader_id != 0 && s.leader_id != victim_id {
                    leader = Some((s.leader_id, s.term, ms(at.elapsed())));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (new_leader, term, leader_ms) = leader.expect("loop ends with a leader");
    Ok(Loss {
        new_leader,
        term,
        leader_ms,
        exit_ms: exit_ms.filter(|_| graceful),
    })
}

/// `bench failover`: `kills` times, take the leader of a 3-node cluster away under a submit
/// loop (SIGKILL, or SIGTERM with `graceful`); measure the loss → new leader reported by a
/// survivor (status polled every 10 ms), → first acknowledged submit, and → exit after a
/// SIGTERM; restart the node on its data and wait for all three to converge before the
/// next. Prints one JSON line per loss and returns the summary (`lost` must be 0).
pub async fn failover(b: FailoverBench) -> anyhow::Result<Value> {
    let _hog = (b.cpu_hog > 0).then(|| crate::cpu_hog::CpuHog::start(b.cpu_hog));
    let mut cluster = three_nodes().await?;
    let addrs = cluster.coordinator_addrs();
    find_leader(&addrs).await?;
    let term_start = max_term(&addrs).await;
    let client = LoopClient::start(addrs.clone());
    let (mut to_leader, mut to_ack, mut to_exit, mut rejoin) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let kills = b.kills;
    for k in 1..=kills {
        client.paused.store(false, Ordering::Relaxed);
        let before = client.acked();
        wait::until_async(
            "10 submits before the kill",
            Duration::from_secs(60),
            || {
                let n = client.acked();
                async move { (n >= before + 10).then_some(()) }
            },
        )
        .await?;

        let victim = find_leader(&addrs).await?;
        let victim_id = cluster.coordinators[victim].id;
        let lost_at = Instant::now();
        let loss = lose_leader(&mut cluster, &addrs, victim, b.graceful).await?;
        let first_ack = wait::until_async(
            "an acknowledged submit after the kill",
            Duration::from_secs(60),
            || {
                let at = client.first_ack_after(lost_at, &addrs[victim]);
                async move { at }
            },
        )
        .await?;
        let ack_ms = ms(first_ack - lost_at);

        client.paused.store(true, Ordering::Relaxed);
        let restarted_at = Instant::now();
        tokio::task::block_in_place(|| cluster.start_coordinator(victim))?;
        let applied = converged(&addrs, Duration::from_secs(120)).await?;
        let rejoin_ms = ms(restarted_at.elapsed());

        let Loss {
            new_leader,
            term,
            leader_ms,
            exit_ms,
        } = loss;
        println!(
            "{}",
            json!({
                "bench": "failover", "kill": k, "killed_node": victim_id,
                "new_leader": new_leader, "term": term,
                "new_leader_ms": (leader_ms * 10.0).round() / 10.0,
                "first_ack_ms": (ack_ms * 10.0).round() / 10.0,
                "exit_ms": exit_ms.map(|e| (e * 10.0).round() / 10.0),
                "rejoin_ms": rejoin_ms.round(), "applied_index": applied,
            })
        );
        eprintln!(
            "{} {k}/{kills}: node {victim_id} → leader {new_leader} (term {term}) in {leader_ms:.0} ms, first ack {ack_ms:.0} ms{}, rejoined in {rejoin_ms:.0} ms",
            if b.graceful { "sigterm" } else { "kill" },
            exit_ms.map(|e| format!(", exited in {e:.0} ms")).unwrap_or_default(),
        );
        to_leader.push(leader_ms);
        to_ack.push(ack_ms);
        to_exit.extend(exit_ms);
        rejoin.push(rejoin_ms);
    }

    client.stop.store(true, Ordering::Relaxed);
    let LoopClient {
        acked,
        failed,
        task,
        ..
    } = client;
    task.await?;
    converged(&addrs, Duration::from_secs(120)).await?;
    let term_end = max_term(&addrs).await;
    let stored: BTreeSet<String> = Submitter::new(addrs, Duration::from_secs(30))
        .pipeline_names()
        .await?
        .into_iter()
        .collect();
    let acked = acked.lock().unwrap();
    let lost = acked.iter().filter(|a| !stored.contains(&a.name)).count();
    let out = json!({
        "bench": "failover",
        "coordinators": 3,
        "kills": kills,
        "signal": if b.graceful { "SIGTERM" } else { "SIGKILL" },
        "cpu_hog": b.cpu_hog,
        "new_leader_ms": summary(&to_leader),
        "first_ack_ms": summary(&to_ack),
        "exit_ms": if b.graceful { summary(&to_exit) } else { Value::Null },
        "rejoin_ms": summary(&rejoin),
        "acked": acked.len(),
        "failed_submits": failed.load(Ordering::Relaxed),
        "stored": stored.len(),
        "lost": lost,
        "term_start": term_start,
        "term_end": term_end,
        // Every election attempt starts a term: one per kill is needed, the rest are
        // needless elections (or split votes).
        "terms_advanced": term_end.saturating_sub(term_start),
        "profile": PROFILE,
    });
    eprintln!(
        "failover over {kills} {}s{}: new leader p50 {} / p99 {} / max {} ms; first ack p50 {} / p99 {} / max {} ms;{} {} acked, {lost} lost; term {term_start} → {term_end}",
        if b.graceful { "SIGTERM" } else { "SIGKILL" },
        if b.cpu_hog > 0 { format!(" with {} cores hogged", b.cpu_hog) } else { String::new() },
        out["new_leader_ms"]["p50"], out["new_leader_ms"]["p99"], out["new_leader_ms"]["max"],
        out["first_ack_ms"]["p50"], out["first_ack_ms"]["p99"], out["first_ack_ms"]["max"],
        if b.graceful { format!(" exit max {} ms;", out["exit_ms"]["max"]) } else { String::new() },
        acked.len(),
    );
    anyhow::ensure!(lost == 0, "{lost} acknowledged submits were lost");
    Ok(out)
}

/// `bench submit`: `clients` concurrent `Submitter`s submit distinct tiny pipelines to a
/// 3-node cluster for `seconds`, over mutual TLS with `tls`; returns committed submits/s and
/// latency figures.
pub async fn submit(clients: usize, seconds: u64, tls: bool) -> anyhow::Result<Value> {
    // Every submit stores a new pipeline: lift the per-namespace quota out of the way.
    let mut builder = TestCluster::builder()
        .coordinators(3)
        .workers(0)
        .coordinator_env("APITAP_MAX_PIPELINES_PER_NAMESPACE", "4000000000");
    if tls {
        builder = builder.tls();
    }
    let cluster = builder.start().await?;
    let client_tls = cluster.certs.as_ref().map(|c| c.client_tls()).transpose()?;
    let addrs = cluster.coordinator_addrs();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut s = Submitter::new(addrs.clone(), Duration::from_secs(30))
            .with_tls(client_tls.clone())
            .with_token(cluster.token())?;
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let mut i = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                match s.submit(&format!("submit-{c}-{i}")).await {
                    Ok(()) => lat.push(ms(t.elapsed())),
                    Err(_) => errors += 1,
                }
                i += 1;
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    let stored = Submitter::new(addrs, Duration::from_secs(30))
        .with_tls(client_tls)
        .with_token(cluster.token())?
        .pipeline_names()
        .await?
        .len();
    let latency = summary(&lat);
    let out = json!({
        "bench": "submit",
        "coordinators": 3,
        "clients": clients,
        "tls": tls,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "committed": lat.len(),
        "errors": errors,
        "stored": stored,
        "submits_per_second": (lat.len() as f64 / secs * 10.0).round() / 10.0,
        "latency_ms": latency,
        "profile": PROFILE,
    });
    eprintln!(
        "submit, {clients} client(s), {secs:.1} s: {} committed/s, latency p50 {} / p99 {} ms, {errors} errors",
        out["submits_per_second"], out["latency_ms"]["p50"], out["latency_ms"]["p99"],
    );
    Ok(out)
}
