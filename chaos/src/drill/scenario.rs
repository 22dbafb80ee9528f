//! What a drill does: the workload, the cluster, and the faults over time. Read from a YAML
//! file (documented in `docs/chaos.md`) or taken from the built-in drills.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::testbed::SinkKind;

/// One drill, as a YAML scenario file describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in the report; defaults to the file name.
    #[serde(default)]
    pub name: String,
    /// Seeds every random choice (which worker, which follower, the order of `mixed`).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Every run must have succeeded this long after it was submitted.
    #[serde(default = "default_deadline", with = "apitap_common::spec::duration")]
    pub deadline: Duration,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub faults: Vec<FaultEntry>,
}

fn default_seed() -> u64 {
    1
}
fn default_deadline() -> Duration {
    Duration::from_secs(600)
}

/// The cluster and the data it loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Records the mock API serves (ids `1..=records`); every one must land exactly once.
    pub records: u64,
    /// The id range is cut into this many pipelines, each loading its own table.
    pub pipelines: u32,
    /// Shards per pipeline (contiguous id ranges).
    pub shards: u32,
    pub page_size: u64,
    /// Every upstream request takes this long, so the runs outlast the faults.
    #[serde(with = "apitap_common::spec::duration")]
    pub source_latency: Duration,
    pub coordinators: usize,
    pub workers: usize,
    /// Shards each worker runs at once.
    pub slots: u32,
    #[serde(with = "apitap_common::spec::duration")]
    pub lease_ttl: Duration,
    /// Workers keep working on leases the coordinator revoked, as a worker cut off from the
    /// coordinator would, so that only the sink's fence stops a zombie.
    pub zombie_workers: bool,
    /// TEST ONLY: workers skip the commit-time fence check (`APITAP_FAULT_DISABLE_FENCING`),
    /// to show that the checker catches what fencing prevents. Such a drill must fail.
    pub unsafe_disable_fencing: bool,
    /// Instead of loading the records, run the rate-limit phases of the `rate-limit` drill
    /// (steady demand above a shared limit, a 429, a leader kill) on this cluster; `faults`
    /// must be empty, the phases inject their own.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rate_limit_phases: bool,
    /// The sink the pipelines load into; the checker reads every record back from it.
    pub sink: SinkKind,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            records: 20_000,
            pipelines: 1,
            shards: 6,
            page_size: 50,
            source_latency: Duration::from_millis(150),
            coordinators: 3,
            workers: 3,
            slots: 4,
            lease_ttl: Duration::from_secs(2),
            zombie_workers: true,
            unsafe_disable_fencing: false,
            rate_limit_phases: false,
            sink: SinkKind::Postgres,
        }
    }
}

/// Every kind of fault a drill can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the Raft leader; restart it (same data) after `restart_after`.
    KillLeader,
    /// SIGKILL a follower; restart it after `restart_after`.
    KillFollower,
    /// SIGKILL a worker that holds leases; restart it after `restart_after`.
    KillWorker,
    /// SIGSTOP a worker that holds leases for `duration`, then SIGCONT: a zombie once its
    /// leases expired.
    PauseWorker,
    /// SIGTERM a coordinator and start it again at once.
    RestartCoordinator,
    /// The next `count` upstream requests get 429 with `Retry-After: retry_after`.
    #[serde(rename = "upstream-429")]
    Upstream429,
    /// The next `count` upstream requests get `status` (default 500).
    #[serde(rename = "upstream-500")]
    Upstream500,
    /// The next `count` upstream requests take `ms` longer.
    UpstreamLatency,
    /// The next `count` upstream responses are cut in half.
    UpstreamTruncate,
    /// Terminate `count` of the workers' PostgreSQL backends, preferring ones mid-transaction.
    KillPgBackend,
    /// Blackhole every link between the leader and the other coordinators for `duration`.
    PartitionLeader,
    /// Delay every link between the leader and the other coordinators by `ms` for `duration`.
    DelayLeader,
    /// Delay every link between any two coordinators by `ms` each way (the round trip grows
    /// by 2 × `ms`) for `duration`; the leader should stay and commits go on. The report
    /// gives the commit latency of probe writes during the fault.
    DelayAll,
    /// Keep `count` CPU cores busy (default 1) for `duration`, beside the cluster.
    CpuHog,
    /// Restart a worker with the fail point `failpoint` set, so that it aborts at its next
    /// commit (right before or right after it); then start it again without. Needs workers
    /// built with `--features apitap-worker/failpoints`.
    CrashWorkerAt,
}

/// The worker's named fail points (`worker/src/shard_loop.rs`, placed in
/// `worker/src/shard_loop/load.rs`), for `crash-worker-at`.
pub const FAIL_POINTS: [&str; 2] = ["sink::before_commit", "sink::after_commit"];

impl FaultKind {
    pub const ALL: [FaultKind; 15] = [
        FaultKind::KillLeader,
        FaultKind::KillFollower,
        FaultKind::KillWorker,
        FaultKind::PauseWorker,
        FaultKind::RestartCoordinator,
        FaultKind::Upstream429,
        FaultKind::Upstream500,
        FaultKind::UpstreamLatency,
        FaultKind::UpstreamTruncate,
        FaultKind::KillPgBackend,
        FaultKind::PartitionLeader,
        FaultKind::DelayLeader,
        FaultKind::DelayAll,
        FaultKind::CpuHog,
        FaultKind::CrashWorkerAt,
    ];

    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill-leader",
            FaultKind::KillFollower => "kill-follower",
            FaultKind::KillWorker => "kill-worker",
            FaultKind::PauseWorker => "pause-worker",
            FaultKind::RestartCoordinator => "restart-coordinator",
            FaultKind::Upstream429 => "upstream-429",
            FaultKind::Upstream500 => "upstream-500",
            FaultKind::UpstreamLatency => "upstream-latency",
            FaultKind::UpstreamTruncate => "upstream-truncate",
            FaultKind::KillPgBackend => "kill-pg-backend",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::DelayLeader => "delay-leader",
            FaultKind::DelayAll => "delay-all",
            FaultKind::CpuHog => "cpu-hog",
            FaultKind::CrashWorkerAt => "crash-worker-at",
        }
    }

    /// Faults that take a coordinator away: at most one at a time, so a quorum stays.
    pub fn disturbs_coordinators(self) -> bool {
        matches!(
            self,
            FaultKind::KillLeader
                | FaultKind::KillFollower
                | FaultKind::RestartCoordinator
                | FaultKind::PartitionLeader
                | FaultKind::DelayLeader
                | FaultKind::DelayAll
        )
    }

    /// Faults that take a worker away: one worker always stays healthy.
    pub fn disturbs_workers(self) -> bool {
        matches!(
            self,
            FaultKind::KillWorker | FaultKind::PauseWorker | FaultKind::CrashWorkerAt
        )
    }
}

/// One line of `faults:`; `every` + `repeat` make it a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEntry {
    /// Time after the workload was submitted.
    #[serde(with = "apitap_common::spec::duration")]
    pub at: Duration,
    pub kind: FaultKind,
    /// pause-worker, partition-leader, delay-leader, delay-all, cpu-hog: how long the fault
    /// lasts (default 4s).
    #[serde(
        default,
        with = "apitap_common::spec::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// kill-*: when the killed node is started again (default 3s).
    #[serde(
        default,
        with = "apitap_common::spec::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_after: Option<Duration>,
    /// upstream-*: how many requests are hit (default 3); kill-pg-backend: backends (1);
    /// cpu-hog: cores kept busy (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// upstream-429: the `Retry-After` sent (default 1s).
    #[serde(
        default,
        with = "apitap_common::spec::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after: Option<Duration>,
    /// upstream-latency (default 1500), delay-leader (default 200), delay-all (default 50,
    /// each way): milliseconds added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// upstream-500: the status answered (default 500; any 5xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// crash-worker-at: the fail point, `sink::before_commit` or `sink::after_commit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failpoint: Option<String>,
    /// kill-worker, pause-worker, crash-worker-at: the worker number (1-based); kill-follower,
    /// restart-coordinator: the coordinator id. Default: a seeded random pick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
    /// Repeat the fault at this interval ...
    #[serde(
        default,
        with = "apitap_common::spec::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<Duration>,
    /// ... this many times in all (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
}

impl FaultEntry {
    pub fn new(at: Duration, kind: FaultKind) -> Self {
        Self {
            at,
            kind,
            duration: None,
            restart_after: None,
            count: None,
            retry_after: None,
            ms: None,
            status: None,
            failpoint: None,
            target: None,
            every: None,
            repeat: None,
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration.unwrap_or(Duration::from_secs(4))
    }
    pub fn restart_after(&self) -> Duration {
        self.restart_after.unwrap_or(Duration::from_secs(3))
    }
    pub fn count(&self) -> u64 {
        self.count.unwrap_or(match self.kind {
            FaultKind::KillPgBackend | FaultKind::CpuHog => 1,
            _ => 3,
        })
    }
    pub fn retry_after(&self) -> Duration {
        self.retry_after.unwrap_or(Duration::from_secs(1))
    }
    pub fn ms(&self) -> u64 {
        self.ms.unwrap_or(match self.kind {
            FaultKind::DelayLeader => 200,
            FaultKind::DelayAll => 50,
            _ => 1500,
        })
    }
    pub fn status(&self) -> u16 {
        self.status.unwrap_or(500)
    }
    /// crash-worker-at: how long the worker may take to reach its fail point before it is
    /// restarted without it anyway (`duration`, default 30s).
    pub fn crash_within(&self) -> Duration {
        self.duration.unwrap_or(Duration::from_secs(30))
    }
}

/// One fault at one time, after `every`/`repeat` were expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFault {
    pub at: Duration,
    pub entry: FaultEntry,
}

impl Scenario {
    /// Parses a scenario file's text; errors name the line and column.
    pub fn from_yaml(text: &str) -> anyhow::Result<Self> {
        // The message names the line and column; no snippet of the file in it.
        let options = serde_saphyr::options! { with_snippet: false };
        let s: Scenario = serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let w = &self.workload;
        anyhow::ensure!(w.records >= 1, "workload.records must be at least 1");
        anyhow::ensure!(
            w.pipelines >= 1 && u64::from(w.pipelines) <= w.records,
            "workload.pipelines must be within 1..=records"
        );
        anyhow::ensure!(
            w.shards >= 1 && u64::from(w.shards * w.pipelines) <= w.records,
            "workload.shards must be at least 1 and pipelines × shards at most records"
        );
        anyhow::ensure!(
            (1..=1000).contains(&w.page_size),
            "workload.page_size must be within 1..=1000 (the mock API's limit)"
        );
        anyhow::ensure!(
            w.coordinators >= 1,
            "workload.coordinators must be at least 1"
        );
        anyhow::ensure!(w.workers >= 1, "workload.workers must be at least 1");
        if w.rate_limit_phases {
            anyhow::ensure!(
                self.faults.is_empty(),
                "workload.rate_limit_phases injects its own faults; `faults` must be empty"
            );
            anyhow::ensure!(
                w.coordinators >= 3,
                "workload.rate_limit_phases kills the leader: it needs at least 3 coordinators"
            );
            anyhow::ensure!(
                w.sink == SinkKind::Postgres,
                "workload.rate_limit_phases measures rate budgets into postgres only; \
                 leave workload.sink (--sink) at postgres"
            );
        }
        for f in &self.faults {
            anyhow::ensure!(
                f.kind != FaultKind::KillPgBackend || w.sink == SinkKind::Postgres,
                "kill-pg-backend at {:?} kills PostgreSQL backends, but this drill loads into \
                 {}: remove the fault or load into postgres (workload.sink, --sink)",
                f.at,
                w.sink.name()
            );
            if f.kind == FaultKind::Upstream500 {
                anyhow::ensure!(
                    (500..=599).contains(&f.status()),
                    "upstream-500: status must be a 5xx, got {}",
                    f.status()
                );
            }
            if f.kind == FaultKind::CrashWorkerAt {
                let fp = f.failpoint.as_deref().unwrap_or_default();
                anyhow::ensure!(
                    FAIL_POINTS.contains(&fp),
                    "crash-worker-at at {:?}: `failpoint` must be one of {}, got {fp:?}",
                    f.at,
                    FAIL_POINTS.join(", ")
                );
            } else {
                anyhow::ensure!(
                    f.failpoint.is_none(),
                    "{} at {:?}: `failpoint` is only for crash-worker-at",
                    f.kind.name(),
                    f.at
                );
            }
            if f.repeat.unwrap_or(1) > 1 {
                anyhow::ensure!(
                    f.every.is_some_and(|e| !e.is_zero()),
                    "{} at {:?}: `repeat` needs `every`",
                    f.kind.name(),
                    f.at
                );
            }
        }
        Ok(())
    }

    /// Every fault occurrence, in time order.
    pub fn plan(&self) -> Vec<PlannedFault> {
        let mut out: Vec<PlannedFault> = self
            .faults
            .iter()
            .flat_map(|f| {
                let every = f.every.unwrap_or_default();
                (0..f.repeat.unwrap_or(1).max(1)).map(move |i| PlannedFault {
                    at: f.at + every * i,
                    entry: f.clone(),
                })
            })
            .collect();
        out.sort_by_key(|p| p.at);
        out
    }

    /// The built-in drill `name`, or `None`.
    pub fn builtin(name: &str) -> Option<Self> {
        let s = |workload: Workload, faults: Vec<FaultEntry>| Scenario {
            name: name.to_string(),
            seed: default_seed(),
            deadline: default_deadline(),
            workload,
            faults,
        };
        let secs = Duration::from_secs;
        let series = |kind, at: u64, every: u64, repeat: u32| FaultEntry {
            every: Some(secs(every)),
            repeat: Some(repeat),
            ..FaultEntry::new(secs(at), kind)
        };
        Some(match name {
            "kill-leader" => s(
                Workload::default(),
                vec![series(FaultKind::KillLeader, 3, 8, 3)],
            ),
            "kill-workers" => s(
                Workload {
                    workers: 4,
                    ..Workload::default()
                },
                vec![series(FaultKind::KillWorker, 3, 5, 4)],
            ),
            "zombie-worker" => s(
                Workload {
                    records: 8_000,
                    shards: 2,
                    coordinators: 1,
                    workers: 2,
                    ..Workload::default()
                },
                vec![FaultEntry {
                    duration: Some(secs(6)),
                    ..FaultEntry::new(secs(3), FaultKind::PauseWorker)
                }],
            ),
            "flaky-upstream" => s(
                Workload::default(),
                vec![
                    series(FaultKind::Upstream429, 2, 6, 3),
                    series(FaultKind::Upstream500, 3, 6, 3),
                    series(FaultKind::UpstreamLatency, 4, 6, 3),
                    series(FaultKind::UpstreamTruncate, 5, 6, 3),
                ],
            ),
            "partition-leader" => s(
                Workload::default(),
                vec![
                    series(FaultKind::PartitionLeader, 3, 10, 2),
                    FaultEntry {
                        duration: Some(secs(3)),
                        ..FaultEntry::new(secs(23), FaultKind::DelayLeader)
                    },
                ],
            ),
            "rate-limit" => s(
                Workload {
                    records: 40_000,
                    pipelines: 2,
                    shards: 4,
                    page_size: 10,
                    source_latency: Duration::ZERO,
                    coordinators: 3,
                    workers: 4,
                    rate_limit_phases: true,
                    ..Workload::default()
                },
                Vec::new(),
            ),
            "mixed" => {
                let mut s = s(
                    Workload {
                        records: 100_000,
                        pipelines: 2,
                        shards: 8,
                        page_size: 50,
                        source_latency: Duration::from_millis(350),
                        workers: 4,
                        // Spare slots, so that a paused worker's shards are taken over
                        // and it comes back as a zombie.
                        slots: 6,
                        ..Workload::default()
                    },
                    Vec::new(),
                );
                s.faults = mixed_faults(s.seed, 2);
                s
            }
            _ => return None,
        })
    }

    /// Names of the built-in drills.
    pub fn builtin_names() -> [&'static str; 7] {
        [
            "kill-leader",
            "kill-workers",
            "zombie-worker",
            "flaky-upstream",
            "partition-leader",
            "mixed",
            "rate-limit",
        ]
    }

    /// Re-seeds the scenario; a built-in `mixed` also reshuffles its faults.
    pub fn reseed(&mut self, seed: u64) {
        if self.name == "mixed" && self.seed != seed {
            let per_kind = self.faults.len() / FaultKind::ALL.len();
            self.faults = mixed_faults(seed, per_kind.max(1));
        }
        self.seed = seed;
    }
}

/// `per_kind` faults of every kind in a seeded order, one every 2.5 s from 4 s on.
fn mixed_faults(seed: u64, per_kind: usize) -> Vec<FaultEntry> {
    let (start, gap) = (Duration::from_secs(4), Duration::from_millis(2500));
    let mut kinds: Vec<FaultKind> = FaultKind::ALL
        .iter()
        .flat_map(|k| std::iter::repeat_n(*k, per_kind))
        .collect();
    kinds.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let mut f = FaultEntry::new(start + gap * i as u32, kind);
            if matches!(
                kind,
                FaultKind::PartitionLeader | FaultKind::DelayLeader | FaultKind::DelayAll
            ) {
                f.duration = Some(Duration::from_secs(3));
            }
            if kind == FaultKind::PauseWorker {
                f.duration = Some(Duration::from_secs(5));
            }
            f
        })
        .scan(0, |crashes, mut f| {
            // Every fail point in turn.
            if f.kind == FaultKind::CrashWorkerAt {
                f.failpoint = Some(FAIL_POINTS[*crashes % FAIL_POINTS.len()].to_string());
                *crashes += 1;
            }
            Some(f)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_file_parses_with_series_and_defaults() {
        let s = Scenario::from_yaml(
            r#"
seed: 7
deadline: 2m
workload: { records: 1000, shards: 4, page_size: 20, coordinators: 3, workers: 2 }
faults:
  - { at: 3s, kind: kill-leader }
  - { at: 1s, kind: pause-worker, duration: 5s }
  - { at: 2s, kind: upstream-429, count: 4, retry_after: 2s, every: 10s, repeat: 3 }
  - { at: 4s, kind: partition-leader, duration: 1500ms }
"#,
        )
        .unwrap();
        assert_eq!(s.seed, 7);
        assert_eq!(s.deadline, Duration::from_secs(120));
        assert_eq!(s.workload.page_size, 20);
        assert_eq!(s.workload.lease_ttl, Duration::from_secs(2));
        let plan = s.plan();
        let at: Vec<u64> = plan.iter().map(|p| p.at.as_secs()).collect();
        assert_eq!(at, vec![1, 2, 3, 4, 12, 22]);
        assert_eq!(plan[0].entry.duration(), Duration::from_secs(5));
        assert_eq!(plan[1].entry.count(), 4);
        assert_eq!(plan[3].entry.duration(), Duration::from_millis(1500));
    }

    #[test]
    fn mistakes_are_reported() {
        let err = Scenario::from_yaml("faults: [{ at: 3s, kind: kill-everything }]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kill-everything"), "{err}");
        let err = Scenario::from_yaml("faults: [{ at: soon, kind: kill-leader }]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid duration \"soon\""), "{err}");
        let err = Scenario::from_yaml("workload: { recrods: 5 }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("recrods"), "{err}");
        assert!(Scenario::from_yaml("faults: [{ at: 1s, kind: kill-worker, repeat: 3 }]").is_err());
        let err = Scenario::from_yaml(
            "workload: { sink: files }\nfaults: [{ at: 1s, kind: kill-pg-backend }]",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("kill-pg-backend") && err.contains("loads into files"),
            "{err}"
        );
        let err = Scenario::from_yaml("workload: { sink: oracle }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("oracle"), "{err}");
        let files = Scenario::from_yaml("workload: { sink: files }").unwrap();
        assert_eq!(files.workload.sink, SinkKind::Files);
        let err = Scenario::from_yaml("faults: [{ at: 1s, kind: crash-worker-at }]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sink::after_commit"), "{err}");
        assert!(Scenario::from_yaml(
            "faults: [{ at: 1s, kind: crash-worker-at, failpoint: sink::commit }]"
        )
        .is_err());
        assert!(Scenario::from_yaml(
            "faults: [{ at: 1s, kind: kill-worker, failpoint: sink::after_commit }]"
        )
        .is_err());
        let ok = Scenario::from_yaml(
            "faults: [{ at: 1s, kind: crash-worker-at, failpoint: sink::after_commit, target: 2 }]",
        )
        .unwrap();
        assert_eq!(
            ok.faults[0].failpoint.as_deref(),
            Some("sink::after_commit")
        );
    }

    #[test]
    fn every_builtin_is_valid_and_mixed_covers_every_kind() {
        for name in Scenario::builtin_names() {
            let s = Scenario::builtin(name).unwrap();
            s.validate().unwrap();
            let yaml = serde_saphyr::to_string(&s).unwrap();
            assert_eq!(Scenario::from_yaml(&yaml).unwrap(), s, "{name} round-trips");
        }
        let mixed = Scenario::builtin("mixed").unwrap();
        assert!(mixed.workload.records >= 100_000);
        assert!(mixed.plan().len() >= 20);
        for k in FaultKind::ALL {
            assert!(mixed.faults.iter().any(|f| f.kind == k), "{k:?} missing");
        }
        for fp in FAIL_POINTS {
            assert!(
                mixed
                    .faults
                    .iter()
                    .any(|f| f.failpoint.as_deref() == Some(fp)),
                "{fp} missing"
            );
        }
        let mut other = mixed.clone();
        other.reseed(99);
        assert_ne!(other.faults, mixed.faults);
        assert_eq!(other.faults.len(), mixed.faults.len());
    }
}
