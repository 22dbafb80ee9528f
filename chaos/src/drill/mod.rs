//! Chaos drills (`apitap-chaos drill`): start a cluster, load a workload through it while
//! faults are injected, heal, then check the invariants of DESIGN §5–§6 and report figures.
//!
//! - [`scenario`]: the YAML scenario format and the built-in drills.
//! - [`workload`]: the pipelines the drill submits and the records they must load.
//! - [`inject`]: the fault timeline (signals, restarts, upstream faults, PostgreSQL backend
//!   kills, partitions through [`crate::proxy`]).
//! - [`sample`]: what is polled while faults go on (leaders, leases, checkpoints).
//! - [`logs`]: what the workers' logs say (claims, rejected and accepted stale commits).
//! - [`check`]: the checks after the cluster healed (data exactly once, Raft state).
//! - [`ratelimit`]: the `rate-limit` drill (global rate budgets), which runs its own phases.
//! - [`report`]: the report, as JSON and as a human summary.

pub mod check;
pub mod elections;
pub mod inject;
pub mod logs;
pub mod probe;
pub mod ratelimit;
pub mod report;
pub mod sample;
pub mod scenario;
pub mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::mock_api::{Fault, FaultSpec};
use crate::proxy::PeerProxies;
use crate::stats::summary;
use crate::testbed::grpc::Caller;
use crate::testbed::{free_port, out_dir, wait, SinkBed, TestCluster};
use apitap_common::spec::FileFormat;

pub use report::Report;
pub use scenario::{FaultEntry, FaultKind, Scenario, Workload};

/// How long after the runs ended the drill still waits before checking, so that a zombie's
/// last commit attempt lands in the data and the logs.
const SETTLE: Duration = Duration::from_secs(2);

pub struct DrillOptions {
    /// Logs, data and `report.json`; emptied first if an earlier drill left it.
    pub out: PathBuf,
    /// Print the timeline on stderr as it happens.
    pub verbose: bool,
    /// Run the cluster as it is meant to run in production: mutual TLS on every gRPC link
    /// (a certificate per node), tokens with roles, secrets sealed at rest. `false`
    /// (`--insecure`) runs it in plaintext, to compare figures or to watch the links with
    /// plain tools.
    pub tls: bool,
}

/// A built-in drill by name, or a scenario file.
pub fn load(name_or_file: &str) -> anyhow::Result<Scenario> {
    if let Some(s) = Scenario::builtin(name_or_file) {
        return Ok(s);
    }
    let path = Path::new(name_or_file);
    if !path.exists() {
        anyhow::bail!(
            "{name_or_file:?} is neither a built-in drill ({}) nor a scenario file",
            Scenario::builtin_names().join(", ")
        );
    }
    let text = std::fs::read_to_string(path)?;
    let mut s =
        Scenario::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if s.name.is_empty() {
        s.name = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into());
    }
    Ok(s)
}

/// The token name of the drill's observers (samplers, injector, checks).
const OBSERVER: &str = "drill-observer";

/// Who the drill's in-process clients are: on a TLS cluster, the user certificate and a
/// `viewer` token of their own (they only look, and must not be able to change what they
/// look at); in plaintext, nobody. Blocking (apitapctl creates the token).
fn observer(cluster: &TestCluster) -> anyhow::Result<Caller> {
    tokio::task::block_in_place(|| Caller::viewer(cluster, OBSERVER))
        .map_err(|e| e.context("creating the drill's viewer token"))
}

/// How the cluster's links are secured, for the timeline and the report.
fn security(tls: bool) -> &'static str {
    if tls {
        "mutual TLS, tokens, sealed secrets"
    } else {
        "plaintext (--insecure)"
    }
}

/// The drill's folder, emptied ([`out_dir::fresh`]).
fn prepare_out(dir: &Path) -> anyhow::Result<PathBuf> {
    out_dir::fresh(dir, "drill")
}

/// Runs the drill. `Err` means the drill could not run (a setup failure); a drill that ran
/// returns its report, whose `violations` say whether the cluster kept its promises.
pub async fn run(scenario: Scenario, opts: DrillOptions) -> anyhow::Result<Report> {
    scenario.validate()?;
    if scenario.workload.rate_limit_phases {
        return ratelimit::run(scenario, opts).await;
    }
    let started = Instant::now();
    let out = prepare_out(&opts.out)?;
    let w = &scenario.workload;
    let say = |msg: String| {
        if opts.verbose {
            eprintln!("{msg}");
        }
    };
    std::fs::write(
        out.join("scenario.yaml"),
        serde_saphyr::to_string(&scenario)?,
    )?;

    let sink = tokio::task::block_in_place(|| {
        SinkBed::start(w.sink, &out.join("sink"), FileFormat::Jsonl)
    })?;
    let proxies = if w.coordinators > 1 {
        let listen: Vec<(u64, String)> = (1..=w.coordinators as u64)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        Some((PeerProxies::start(&listen)?, listen))
    } else {
        None
    };
    let mut builder = TestCluster::builder()
        .coordinators(w.coordinators)
        .workers(w.workers)
        .slots(w.slots)
        .records(w.records)
        .lease_ttl(w.lease_ttl)
        .out_dir(&out)
        .worker_env("APITAP_LOG_FORMAT", "json");
    if let Some(url) = sink.secret() {
        builder = builder.secret("WAREHOUSE_URL", &url);
    }
    if opts.tls {
        builder = builder.tls();
    }
    if w.zombie_workers {
        builder = builder.worker_env("APITAP_FAULT_IGNORE_REVOCATIONS", "true");
    }
    if w.unsafe_disable_fencing {
        builder = builder.worker_env("APITAP_FAULT_DISABLE_FENCING", "true");
    }
    if let Some((p, listen)) = &proxies {
        let pairs = listen
            .iter()
            .map(|(id, addr)| (addr.clone(), p.addr(*id).unwrap_or_default()))
            .collect();
        builder = builder.advertise(pairs);
    }
    say(format!(
        "drill {}: {} coordinators, {} workers, {} records in {} pipelines × {} shards into {}, {}; logs in {}",
        scenario.name,
        w.coordinators,
        w.workers,
        w.records,
        w.pipelines,
        w.shards,
        w.sink.name(),
        security(opts.tls),
        out.join("logs").display()
    ));
    let mut cluster = builder.start().await?;
    let fault_injection = cluster.workers.iter().all(|w| w.failpoints);
    anyhow::ensure!(
        fault_injection || !w.unsafe_disable_fencing,
        "unsafe_disable_fencing needs workers built with fault injection: \
         cargo build --features apitap-worker/failpoints"
    );
    let proxies = proxies.map(|(p, _)| p);
    let background = (!w.source_latency.is_zero()).then_some(FaultSpec {
        fault: Fault::Latency {
            ms: w.source_latency.as_millis() as u64,
        },
        count: inject::BACKGROUND_COUNT,
    });
    if let Some(bg) = background {
        cluster.mock.state().push_fault(bg);
    }

    let pipelines = workload::pipelines(w);
    let mut runs = Vec::new();
    for (i, p) in pipelines.iter().enumerate() {
        let yaml = workload::pipeline_yaml(p, w.page_size, i, &sink.yaml(&p.table));
        let run = tokio::task::block_in_place(|| cluster.submit(&p.name, &yaml))?;
        runs.push((run, Instant::now()));
    }
    say(format!(
        "submitted runs {:?}; {} faults planned",
        runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        scenario.plan().len()
    ));
    let nodes: Vec<(u64, String)> = cluster
        .coordinators
        .iter()
        .map(|c| (c.id, c.addr.clone()))
        .collect();
    let caller = observer(&cluster)?;
    let reader = sink.reader().await?;
    let samplers = sample::Samplers::start(
        nodes.clone(),
        runs.iter().map(|r| r.0).collect(),
        reader.clone(),
        &caller,
    )?;

    let mut injector = inject::Injector::new(
        &mut cluster,
        proxies.as_ref(),
        reader.postgres().cloned(),
        samplers.obs.clone(),
        scenario.seed,
        background,
        opts.verbose,
    )
    .with_caller(caller.clone());
    injector.run(scenario.plan()).await?;
    let inject::Injector {
        timeline,
        injected,
        failovers,
        reassigns,
        paused,
        mut notes,
        t0,
        delay_all_commit_ms,
        delay_all_commit_failures,
        ..
    } = injector;
    if w.zombie_workers && !fault_injection {
        notes.push(
            "workers built without fault injection (`--features apitap-worker/failpoints`): \
             they stop revoked leases at once, so no zombie commit is attempted"
                .into(),
        );
    }

    // Heal: lift every link rule and upstream fault, then let the runs finish.
    if let Some(p) = &proxies {
        p.heal_all();
    }
    cluster.mock.state().clear_faults();
    say("faults done; waiting for the runs to finish".into());
    let last_deadline =
        runs.iter().map(|r| r.1).max().unwrap_or_else(Instant::now) + scenario.deadline;
    let obs = samplers.obs.clone();
    let _ = wait::until_async(
        "the runs to finish",
        last_deadline.saturating_duration_since(Instant::now()),
        || {
            let obs = obs.clone();
            let ids: Vec<u64> = runs.iter().map(|r| r.0).collect();
            async move {
                let o = sample::lock_obs(&obs);
                ids.iter()
                    .all(|id| {
                        o.runs.get(id).is_some_and(|r| {
                            matches!(r.state.as_str(), "succeeded" | "failed" | "cancelled")
                        })
                    })
                    .then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(SETTLE).await;
    let obs = samplers.stop().await;

    // Checks.
    let Sampled {
        mut violations,
        runs: run_summaries,
        failover_ms,
        reassign_ms,
        shard_keys,
        samples,
    } = sampled(
        &sample::lock_obs(&obs),
        &runs,
        scenario.deadline,
        &failovers,
        &reassigns,
        &mut notes,
    );

    let mut tables = Vec::new();
    for p in &pipelines {
        let c = check::table(&reader, p).await?;
        if c.lost > 0 {
            let keys = shard_keys.get(&p.name).cloned().unwrap_or_default();
            violations.extend(check::shard_gaps(&c, &keys));
            violations.push(format!(
                "{}: {} of {} records lost (first ids {:?})",
                p.table, c.lost, c.expected, c.first_lost
            ));
        }
        if c.duplicated > 0 {
            violations.push(format!(
                "{}: {} duplicate rows (first ids {:?})",
                p.table, c.duplicated, c.first_duplicated
            ));
        }
        if c.unexpected > 0 {
            violations.push(format!(
                "{}: {} ids outside its range",
                p.table, c.unexpected
            ));
        }
        if c.corrupt > 0 {
            violations.push(format!(
                "{}: {} rows differ from the source",
                p.table, c.corrupt
            ));
        }
        tables.push(c);
    }
    reader.close().await;

    let addrs: Vec<String> = nodes.iter().map(|(_, a)| a.clone()).collect();
    let raft_digest = match check::raft_converged(&addrs, &caller, Duration::from_secs(60)).await {
        Ok(d) => Some(d),
        Err(views) => {
            violations.push(format!("coordinators disagree on the Raft state: {views}"));
            None
        }
    };

    let mut findings = logs::LogFindings::default();
    for wk in &cluster.workers {
        findings.add_log(&wk.id, &cluster.log_path(&wk.id));
    }
    violations.extend(
        findings
            .double_claims()
            .into_iter()
            .map(|c| format!("two holders claimed one fence: {c}")),
    );
    let mut accepted: std::collections::BTreeMap<(&str, u64), (u64, u64)> = Default::default();
    for (worker, fence, stored) in &findings.accepted {
        let e = accepted.entry((worker.as_str(), *fence)).or_default();
        e.0 += 1;
        e.1 = e.1.max(*stored);
    }
    for ((worker, fence), (n, stored)) in accepted {
        violations.push(format!(
            "zombie commits accepted: {n} by {worker} under fence {fence} while the sink held fence {stored}"
        ));
    }
    let zombie_rejected = findings.rejected.len() as u64;
    let zombie_accepted = findings.accepted.len() as u64;
    if !paused.is_empty() && zombie_rejected + zombie_accepted == 0 {
        notes.push(
            "no zombie commit was attempted: no paused worker had its leases taken over and then tried to commit".into(),
        );
    }

    let leadership = elections::with_probe(
        elections::leadership(&sample::lock_obs(&obs), &timeline, t0),
        &delay_all_commit_ms,
        delay_all_commit_failures,
    );
    let report = Report {
        records_checked: tables.iter().map(|t| t.expected).sum(),
        lost: tables.iter().map(|t| t.lost).sum(),
        duplicated: tables.iter().map(|t| t.duplicated).sum(),
        redelivered: tables.iter().map(|t| t.redelivered).sum(),
        unexpected: tables.iter().map(|t| t.unexpected).sum(),
        corrupt: tables.iter().map(|t| t.corrupt).sum(),
        leader_failover_ms: summary(&failover_ms),
        shard_reassign_ms: summary(&reassign_ms),
        zombie_commits_attempted: zombie_rejected + zombie_accepted,
        zombie_commits_rejected: zombie_rejected,
        zombie_commits_accepted: zombie_accepted,
        tables,
        runs: run_summaries,
        samples,
        leadership,
        proxy: proxies.as_ref().map(|p| p.stats()),
        raft_digest,
        notes,
        violations,
        ..Report::base(
            &scenario, opts.tls, w.sink, started, injected, timeline, &out,
        )
    }
    .finish()?;
    drop(cluster);
    drop(proxies);
    drop(sink);
    Ok(report)
}

/// What the samples show once the drill is over.
struct Sampled {
    violations: Vec<String>,
    runs: Vec<report::RunSummary>,
    failover_ms: Vec<f64>,
    reassign_ms: Vec<f64>,
    /// pipeline → its shards' keys (`start-end`).
    shard_keys: std::collections::BTreeMap<String, Vec<String>>,
    samples: report::SampleCounts,
}

fn sampled(
    o: &sample::Observations,
    runs: &[(u64, Instant)],
    deadline: Duration,
    failovers: &[inject::FailoverAnchor],
    reassigns: &[inject::ReassignAnchor],
    notes: &mut Vec<String>,
) -> Sampled {
    let mut violations = Vec::new();
    violations.extend(o.violations.iter().cloned());
    if o.violations_dropped > 0 {
        violations.push(format!(
            "… and {} more sampled violations",
            o.violations_dropped
        ));
    }
    let mut run_summaries = Vec::new();
    for (run_id, _) in runs {
        let Some(r) = o.runs.get(run_id) else {
            violations.push(format!("run {run_id} was never observed"));
            continue;
        };
        let duration_ms = if r.finished_at_ms > 0 {
            r.finished_at_ms.saturating_sub(r.created_at_ms)
        } else {
            0
        };
        if r.state != "succeeded" {
            violations.push(format!(
                "run {run_id} ({}) did not succeed by its deadline of {:?}: {} {}",
                r.pipeline, deadline, r.state, r.error
            ));
        } else if Duration::from_millis(duration_ms) > deadline {
            violations.push(format!(
                "run {run_id} ({}) took {duration_ms} ms, beyond its deadline of {:?}",
                r.pipeline, deadline
            ));
        }
        run_summaries.push(report::RunSummary {
            run_id: *run_id,
            pipeline: r.pipeline.clone(),
            state: r.state.clone(),
            duration_ms,
            shards: r.shards.len(),
            leases: r.shards.iter().map(|s| u64::from(s.attempts)).sum(),
        });
    }
    let failover_ms: Vec<f64> = failovers
        .iter()
        .filter_map(|a| match o.new_leader_at(a.term, a.at) {
            Some((t, _)) => Some((t - a.at).as_secs_f64() * 1000.0),
            None => {
                notes.push(format!(
                    "{}: no new leader was seen after coordinator-{} (term {}) was lost",
                    a.kind.name(),
                    a.leader,
                    a.term
                ));
                None
            }
        })
        .collect();
    let mut reassign_ms = Vec::new();
    let mut not_reassigned = 0;
    for a in reassigns {
        for (run, shard, fence) in &a.leases {
            match o.regranted_at(*run, *shard, *fence, a.at) {
                Some(t) => reassign_ms.push((t - a.at).as_secs_f64() * 1000.0),
                None => not_reassigned += 1,
            }
        }
    }
    if not_reassigned > 0 {
        notes.push(format!(
            "{not_reassigned} leases of killed or paused workers were not granted again (the worker came back and finished them first)"
        ));
    }
    let shard_keys: std::collections::BTreeMap<String, Vec<String>> = o
        .runs
        .values()
        .map(|r| {
            (
                r.pipeline.clone(),
                r.shards.iter().map(|s| s.key.clone()).collect(),
            )
        })
        .collect();
    let samples = report::SampleCounts {
        status: o.status_samples,
        runs: o.run_samples,
        checkpoints: o.checkpoint_samples,
        terms_led: o
            .status
            .iter()
            .filter(|s| s.is_leader())
            .map(|s| s.term)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64,
        last_term: o.status.iter().map(|s| s.term).max().unwrap_or(0),
    };
    Sampled {
        violations,
        runs: run_summaries,
        failover_ms,
        reassign_ms,
        shard_keys,
        samples,
    }
}
