//! The fault timeline: injects each planned fault at its time and the follow-ups it needs
//! (restart a killed node, resume a paused worker, heal a partition), and remembers what
//! the figures are measured from (when a leader or a worker's leases were lost).
//!
//! At most one coordinator is disturbed at a time (so a quorum always remains) and at least
//! one worker stays healthy; a fault that would break this waits until it is safe.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sqlx::PgPool;

use super::sample::Shared;
use super::scenario::{FaultKind, PlannedFault};
use crate::mock_api::{Fault, FaultSpec};
use crate::proxy::{LinkFault, PeerProxies};
use crate::testbed::grpc::{status_as, Caller};
use crate::testbed::{wait, TestCluster};

/// Requests the background source latency applies to: "for ever". Entries this large in the
/// mock's fault queue are the background; smaller ones are injected faults.
pub(super) const BACKGROUND_COUNT: u64 = 1 << 40;

/// The leader was lost at `at` (it led `term`); the figure is the time to a new leader.
#[derive(Debug, Clone)]
pub struct FailoverAnchor {
    pub at: Instant,
    pub term: u64,
    pub leader: u64,
    pub kind: FaultKind,
}

/// `worker` was lost at `at` holding `leases` (run, shard, fence).
#[derive(Debug, Clone)]
pub struct ReassignAnchor {
    pub at: Instant,
    pub worker: String,
    pub leases: Vec<(u64, u32, u64)>,
    pub kind: FaultKind,
}

/// One line of the report's timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelineEntry {
    pub at_ms: u64,
    pub kind: String,
    pub detail: String,
}

/// No coordinator leads right now: a leader fault waits and tries again.
#[derive(Debug, thiserror::Error)]
#[error("no coordinator leads right now")]
struct NoLeader;

/// How long a coordinator may take to exit after SIGTERM before it is killed (the timeline
/// waits meanwhile).
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A fault that cannot be injected safely this long after its planned time is skipped.
const MAX_DEFERRAL: Duration = Duration::from_secs(60);

enum Event {
    Inject(PlannedFault),
    RestartCoordinator(usize),
    RestartWorker(usize),
    ResumeWorker(usize),
    Heal(u64),
    /// delay-all is over: lift every link rule and stop the commit probe.
    HealAll,
    /// cpu-hog `n` is over.
    StopHog(u64),
    /// crash-worker-at: has `worker` aborted at `failpoint` yet? It is started again
    /// without the fail point once it has, or at `until` anyway.
    AwaitCrash {
        worker: usize,
        failpoint: String,
        until: Duration,
    },
}

/// How often a worker armed with a fail point is checked for its crash.
const CRASH_POLL: Duration = Duration::from_millis(100);

pub struct Injector<'a> {
    pub cluster: &'a mut TestCluster,
    pub proxies: Option<&'a PeerProxies>,
    /// The drill's PostgreSQL sink, for `kill-pg-backend` (`None` for other sinks: the
    /// scenario's validation refuses the fault then).
    pub pool: Option<PgPool>,
    pub obs: Shared,
    pub t0: Instant,
    /// Latency every upstream request gets, kept at the tail of the mock's fault queue.
    pub background: Option<FaultSpec>,
    pub verbose: bool,
    /// Who the injector is when it asks the coordinators who leads.
    caller: Caller,
    rng: StdRng,
    /// Coordinators (by index) killed, partitioned or slowed, until their follow-up.
    coord_down: BTreeSet<usize>,
    /// Workers (by index) killed or paused, until their follow-up.
    worker_down: BTreeSet<usize>,
    queue: Vec<(Duration, u64, Event)>,
    seq: u64,
    pub timeline: Vec<TimelineEntry>,
    pub injected: BTreeMap<String, u64>,
    pub failovers: Vec<FailoverAnchor>,
    pub reassigns: Vec<ReassignAnchor>,
    /// Workers that were paused (their log is where zombie commits show).
    pub paused: BTreeSet<String>,
    pub notes: Vec<String>,
    /// The commit probe of the delay-all fault under way.
    probe: Option<super::probe::CommitProbe>,
    /// Commit latencies (ms) the probe measured during delay-all faults, and its failures.
    pub delay_all_commit_ms: Vec<f64>,
    pub delay_all_commit_failures: u64,
    /// cpu-hog faults under way, by their event number.
    hogs: BTreeMap<u64, crate::cpu_hog::CpuHog>,
}

impl<'a> Injector<'a> {
    pub fn new(
        cluster: &'a mut TestCluster,
        proxies: Option<&'a PeerProxies>,
        pool: Option<PgPool>,
        obs: Shared,
        seed: u64,
        background: Option<FaultSpec>,
        verbose: bool,
    ) -> Self {
        Self {
            cluster,
            proxies,
            pool,
            obs,
            t0: Instant::now(),
            background,
            verbose,
            caller: Caller::plain(),
            rng: StdRng::seed_from_u64(seed),
            coord_down: BTreeSet::new(),
            worker_down: BTreeSet::new(),
            queue: Vec::new(),
            seq: 0,
            timeline: Vec::new(),
            injected: BTreeMap::new(),
            failovers: Vec::new(),
            reassigns: Vec::new(),
            paused: BTreeSet::new(),
            notes: Vec::new(),
            probe: None,
            delay_all_commit_ms: Vec::new(),
            delay_all_commit_failures: 0,
            hogs: BTreeMap::new(),
        }
    }

    /// Asks the coordinators as `caller` (a TLS cluster's certificate and token).
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }

    fn schedule(&mut self, at: Duration, ev: Event) {
        self.seq += 1;
        self.queue.push((at, self.seq, ev));
    }

    fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    fn log(&mut self, kind: &str, detail: String) {
        let at = self.elapsed();
        if self.verbose {
            eprintln!("[{:>7.1}s] {kind}: {detail}", at.as_secs_f64());
        }
        self.timeline.push(TimelineEntry {
            at_ms: at.as_millis() as u64,
            kind: kind.to_string(),
            detail,
        });
    }

    fn count(&mut self, kind: FaultKind) {
        *self.injected.entry(kind.name().to_string()).or_default() += 1;
    }

    /// Runs the whole plan, follow-ups included; returns when nothing is left to do.
    pub async fn run(&mut self, plan: Vec<PlannedFault>) -> anyhow::Result<()> {
        for f in plan {
            self.schedule(f.at, Event::Inject(f));
        }
        while let Some(i) =
            (0..self.queue.len()).min_by_key(|i| (self.queue[*i].0, self.queue[*i].1))
        {
            let (due, _, ev) = self.queue.swap_remove(i);
            tokio::time::sleep_until((self.t0 + due).into()).await;
            match ev {
                Event::Inject(fault) => self.try_inject(fault).await,
                Event::RestartCoordinator(i) => {
                    self.start_coordinator(i)?;
                    self.coord_down.remove(&i);
                    let id = self.cluster.coordinators[i].id;
                    self.log(
                        "restart",
                        format!("coordinator-{id} started again on its data"),
                    );
                }
                Event::RestartWorker(i) => {
                    let cluster = &mut *self.cluster;
                    tokio::task::block_in_place(|| cluster.start_worker(i))?;
                    self.worker_down.remove(&i);
                    let id = self.cluster.workers[i].id.clone();
                    self.log("restart", format!("{id} started again"));
                }
                Event::ResumeWorker(i) => {
                    if let Some(p) = self.cluster.worker_proc(i) {
                        p.signal(libc::SIGCONT);
                    }
                    self.worker_down.remove(&i);
                    let id = self.cluster.workers[i].id.clone();
                    self.log("resume", format!("SIGCONT {id}"));
                }
                Event::Heal(node) => {
                    if let Some(p) = self.proxies {
                        p.heal(node);
                    }
                    if let Some(i) = self.coord_index(node) {
                        self.coord_down.remove(&i);
                    }
                    self.log("heal", format!("links of coordinator-{node} healed"));
                }
                Event::HealAll => self.heal_all().await,
                Event::StopHog(n) => {
                    if let Some(hog) = self.hogs.remove(&n) {
                        self.log("cpu-hog", format!("{} busy cores released", hog.cores()));
                    }
                }
                Event::AwaitCrash {
                    worker,
                    failpoint,
                    until,
                } => self.await_crash(worker, failpoint, until)?,
            }
        }
        Ok(())
    }

    /// Follow-up of delay-all: every link healed, the probe's figures kept.
    async fn heal_all(&mut self) {
        if let Some(p) = self.proxies {
            p.heal_all();
        }
        self.coord_down.clear();
        if let Some(probe) = self.probe.take() {
            let (ms, failed) = probe.stop().await;
            let n = ms.len();
            self.delay_all_commit_ms.extend(ms);
            self.delay_all_commit_failures += failed;
            self.log(
                "heal",
                format!("every coordinator link healed; {n} probe commits, {failed} failed"),
            );
        }
    }

    /// Follow-up of crash-worker-at: once the armed worker aborted (or `until` passed), start
    /// it again without the fail point.
    fn await_crash(&mut self, i: usize, failpoint: String, until: Duration) -> anyhow::Result<()> {
        let id = self.cluster.workers[i].id.clone();
        let exited = self.cluster.worker_proc(i).and_then(|p| p.try_wait());
        match exited {
            Some(status) => self.log(
                "crash",
                format!("{id} aborted at fail point {failpoint} ({status})"),
            ),
            None if self.elapsed() < until => {
                let at = self.elapsed() + CRASH_POLL;
                self.schedule(
                    at,
                    Event::AwaitCrash {
                        worker: i,
                        failpoint,
                        until,
                    },
                );
                return Ok(());
            }
            None => {
                self.notes.push(format!(
                    "crash-worker-at: {id} did not reach fail point {failpoint} in time (no commit); restarted without it"
                ));
                if let Some(p) = self.cluster.worker_proc(i) {
                    p.kill();
                }
            }
        }
        let cluster = &mut *self.cluster;
        tokio::task::block_in_place(|| cluster.start_worker(i))?;
        self.worker_down.remove(&i);
        self.log("restart", format!("{id} started again without fail points"));
        Ok(())
    }

    /// Injects `fault`, or queues it again a little later while it is not safe yet.
    async fn try_inject(&mut self, fault: PlannedFault) {
        let k = fault.entry.kind;
        let result = match self.not_safe_yet(&fault) {
            Some(why) => Err(anyhow::anyhow!(why)),
            None => self.inject(&fault).await,
        };
        let Err(e) = result else { return };
        let deferrable = self.not_safe_yet(&fault).is_some() || e.is::<NoLeader>();
        if deferrable && self.elapsed() <= fault.at + MAX_DEFERRAL {
            let at = self.elapsed() + Duration::from_millis(250);
            self.schedule(at, Event::Inject(fault));
        } else if deferrable {
            self.notes.push(format!(
                "{} planned at {:?} skipped: it could not be injected safely for {MAX_DEFERRAL:?} ({e})",
                k.name(),
                fault.at
            ));
        } else {
            self.log(k.name(), format!("not injected: {e:#}"));
            self.notes.push(format!(
                "{} at {:?} not injected: {e:#}",
                k.name(),
                fault.at
            ));
        }
    }

    /// Why `fault` must wait: it would disturb a second coordinator, leave no healthy
    /// worker, or hit a worker that is still down.
    fn not_safe_yet(&self, fault: &PlannedFault) -> Option<&'static str> {
        let k = fault.entry.kind;
        if k.disturbs_coordinators() && !self.coord_down.is_empty() {
            return Some("another coordinator is still down, partitioned or delayed");
        }
        if k.disturbs_workers() {
            if self.cluster.workers.len() - self.worker_down.len() < 2 {
                return Some("it would leave no healthy worker");
            }
            let target = fault.entry.target.and_then(|t| t.checked_sub(1));
            if target.is_some_and(|t| self.worker_down.contains(&(t as usize))) {
                return Some("its target worker is still down");
            }
        }
        None
    }

    fn coord_index(&self, id: u64) -> Option<usize> {
        self.cluster.coordinators.iter().position(|c| c.id == id)
    }

    fn start_coordinator(&mut self, i: usize) -> anyhow::Result<()> {
        let cluster = &mut *self.cluster;
        tokio::task::block_in_place(|| cluster.start_coordinator(i))
    }

    /// (index, id, term) of the coordinator that leads now, waiting up to 2 s for one (the
    /// timeline goes on meanwhile: restarts and resumes must not wait for a leader).
    async fn leader(&self) -> anyhow::Result<(usize, u64, u64)> {
        let nodes: Vec<(usize, u64, String)> = self
            .cluster
            .coordinators
            .iter()
            .enumerate()
            .filter(|(_, c)| c.proc.is_some())
            .map(|(i, c)| (i, c.id, c.addr.clone()))
            .collect();
        wait::until_async("a leader", Duration::from_secs(2), || {
            let nodes = nodes.clone();
            let caller = self.caller.clone();
            async move {
                let mut best: Option<(usize, u64, u64)> = None;
                for (i, id, addr) in &nodes {
                    let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_millis(500), status_as(addr, &caller))
                            .await
                    else {
                        continue;
                    };
                    if s.leader_id == *id && best.is_none_or(|b| s.term > b.2) {
                        best = Some((*i, *id, s.term));
                    }
                }
                best
            }
        })
        .await
        .map_err(|_| anyhow::Error::new(NoLeader))
    }

    /// A healthy worker to hit: `target` (1-based) if given, else a seeded pick, preferring
    /// workers that hold leases.
    fn pick_worker(&mut self, target: Option<u64>) -> anyhow::Result<usize> {
        let healthy: Vec<usize> = (0..self.cluster.workers.len())
            .filter(|i| !self.worker_down.contains(i) && self.cluster.workers[*i].proc.is_some())
            .collect();
        if let Some(t) = target {
            let i = t.checked_sub(1).map(|i| i as usize);
            return i
                .filter(|i| healthy.contains(i))
                .ok_or_else(|| anyhow::anyhow!("worker {t} is not a healthy worker"));
        }
        let busy = crate::drill::sample::lock_obs(&self.obs).busy_workers();
        let preferred: Vec<usize> = healthy
            .iter()
            .copied()
            .filter(|i| busy.contains(&self.cluster.workers[*i].id))
            .collect();
        let pool = if preferred.is_empty() {
            &healthy
        } else {
            &preferred
        };
        pool.choose(&mut self.rng)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no healthy worker"))
    }

    /// A coordinator by `target` id, else a seeded pick among the running ones except `not`.
    fn pick_coordinator(
        &mut self,
        target: Option<u64>,
        not: Option<usize>,
    ) -> anyhow::Result<usize> {
        if let Some(t) = target {
            return self
                .coord_index(t)
                .filter(|i| Some(*i) != not && self.cluster.coordinators[*i].proc.is_some())
                .ok_or_else(|| anyhow::anyhow!("coordinator {t} cannot be picked"));
        }
        let running: Vec<usize> = (0..self.cluster.coordinators.len())
            .filter(|i| Some(*i) != not && self.cluster.coordinators[*i].proc.is_some())
            .collect();
        running
            .choose(&mut self.rng)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no coordinator to pick"))
    }

    /// Queues an upstream fault in the mock API ahead of the background latency.
    fn push_upstream(&self, spec: FaultSpec) {
        let st = self.cluster.mock.state();
        let pending = st.pending_faults();
        st.clear_faults();
        for p in pending
            .into_iter()
            .filter(|p| p.count < BACKGROUND_COUNT / 2)
        {
            st.push_fault(p);
        }
        st.push_fault(spec);
        if let Some(bg) = self.background {
            st.push_fault(bg);
        }
    }

    /// SIGKILLs coordinator `i` and schedules its restart after `restart_after`.
    fn kill_coordinator(&mut self, i: usize, restart_after: Duration) {
        if let Some(p) = self.cluster.coordinator_proc(i) {
            p.kill();
        }
        self.cluster.coordinators[i].proc = None;
        self.coord_down.insert(i);
        self.schedule(self.elapsed() + restart_after, Event::RestartCoordinator(i));
    }

    async fn inject(&mut self, f: &PlannedFault) -> anyhow::Result<()> {
        let e = &f.entry;
        let kind = e.kind;
        let name = kind.name();
        match kind {
            FaultKind::KillLeader => {
                let (i, id, term) = self.leader().await?;
                self.failovers.push(FailoverAnchor {
                    at: Instant::now(),
                    term,
                    leader: id,
                    kind,
                });
                self.kill_coordinator(i, e.restart_after());
                self.log(
                    name,
                    format!("SIGKILL coordinator-{id} (leader of term {term})"),
                );
            }
            FaultKind::KillFollower => {
                let (leader, _, _) = self.leader().await?;
                let i = self.pick_coordinator(e.target, Some(leader))?;
                let id = self.cluster.coordinators[i].id;
                self.kill_coordinator(i, e.restart_after());
                self.log(name, format!("SIGKILL coordinator-{id} (a follower)"));
            }
            FaultKind::RestartCoordinator => {
                let (leader, _, term) = self.leader().await?;
                let i = self.pick_coordinator(e.target, None)?;
                let id = self.cluster.coordinators[i].id;
                if i == leader {
                    self.failovers.push(FailoverAnchor {
                        at: Instant::now(),
                        term,
                        leader: id,
                        kind,
                    });
                }
                let status = match self.cluster.coordinator_proc(i) {
                    Some(p) => tokio::task::block_in_place(|| p.terminate(TERM_GRACE)),
                    None => None,
                };
                let exit = match status {
                    Some(s) => s.to_string(),
                    None => {
                        self.notes.push(format!(
                            "restart-coordinator: coordinator-{id} did not exit within {TERM_GRACE:?} of SIGTERM and was killed"
                        ));
                        format!("killed after {TERM_GRACE:?}")
                    }
                };
                self.start_coordinator(i)?;
                let role = if i == leader {
                    "the leader"
                } else {
                    "a follower"
                };
                self.log(
                    name,
                    format!("SIGTERM coordinator-{id} ({role}; {exit}) and start it again"),
                );
            }
            FaultKind::KillWorker | FaultKind::PauseWorker => {
                let i = self.pick_worker(e.target)?;
                let id = self.cluster.workers[i].id.clone();
                let leases = crate::drill::sample::lock_obs(&self.obs).leases_of(&id);
                self.reassigns.push(ReassignAnchor {
                    at: Instant::now(),
                    worker: id.clone(),
                    leases: leases.clone(),
                    kind,
                });
                self.worker_down.insert(i);
                if kind == FaultKind::KillWorker {
                    if let Some(p) = self.cluster.worker_proc(i) {
                        p.kill();
                    }
                    self.schedule(self.elapsed() + e.restart_after(), Event::RestartWorker(i));
                    self.log(
                        name,
                        format!("SIGKILL {id} holding {} leases", leases.len()),
                    );
                } else {
                    if let Some(p) = self.cluster.worker_proc(i) {
                        p.signal(libc::SIGSTOP);
                    }
                    self.paused.insert(id.clone());
                    self.schedule(self.elapsed() + e.duration(), Event::ResumeWorker(i));
                    self.log(
                        name,
                        format!(
                            "SIGSTOP {id} holding {} leases for {:?}",
                            leases.len(),
                            e.duration()
                        ),
                    );
                }
            }
            FaultKind::CrashWorkerAt => {
                let failpoint = e
                    .failpoint
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("needs a `failpoint`"))?;
                let i = self.pick_worker(e.target)?;
                let id = self.cluster.workers[i].id.clone();
                anyhow::ensure!(
                    self.cluster.workers[i].failpoints,
                    "{id} has no fail points: build the workers with `--features apitap-worker/failpoints`"
                );
                let leases = crate::drill::sample::lock_obs(&self.obs).leases_of(&id);
                self.worker_down.insert(i);
                if let Some(p) = self.cluster.worker_proc(i) {
                    p.kill();
                }
                let setting = format!("{failpoint}=return");
                let cluster = &mut *self.cluster;
                let started = tokio::task::block_in_place(|| {
                    cluster.start_worker_with_env(i, &[("FAILPOINTS", &setting)])
                });
                if let Err(err) = started {
                    self.schedule(self.elapsed(), Event::RestartWorker(i));
                    return Err(err.context(format!("{id} did not start with FAILPOINTS")));
                }
                let until = self.elapsed() + e.crash_within();
                self.schedule(
                    self.elapsed() + CRASH_POLL,
                    Event::AwaitCrash {
                        worker: i,
                        failpoint,
                        until,
                    },
                );
                self.log(
                    name,
                    format!(
                        "SIGKILL {id} holding {} leases and start it with FAILPOINTS={setting}: it aborts at its next commit",
                        leases.len()
                    ),
                );
            }
            FaultKind::Upstream429 | FaultKind::Upstream500 => {
                let (status, retry_after_secs) = if kind == FaultKind::Upstream429 {
                    (429, Some(e.retry_after().as_secs().max(1)))
                } else {
                    (e.status(), None)
                };
                self.push_upstream(FaultSpec {
                    fault: Fault::Status {
                        status,
                        retry_after_secs,
                    },
                    count: e.count(),
                });
                self.log(
                    name,
                    format!("next {} upstream requests answer {status}", e.count()),
                );
            }
            FaultKind::UpstreamLatency => {
                self.push_upstream(FaultSpec {
                    fault: Fault::Latency { ms: e.ms() },
                    count: e.count(),
                });
                self.log(
                    name,
                    format!("next {} upstream requests {} ms slower", e.count(), e.ms()),
                );
            }
            FaultKind::UpstreamTruncate => {
                self.push_upstream(FaultSpec {
                    fault: Fault::Truncate,
                    count: e.count(),
                });
                self.log(
                    name,
                    format!("next {} upstream responses cut in half", e.count()),
                );
            }
            FaultKind::KillPgBackend => {
                let pool = self
                    .pool
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("kill-pg-backend needs the postgres sink"))?;
                let n = kill_pg_backends(pool, e.count()).await?;
                if n == 0 {
                    self.notes.push(format!(
                        "kill-pg-backend at {:?}: no worker backend was connected",
                        f.at
                    ));
                }
                self.log(name, format!("terminated {n} worker PostgreSQL backends"));
            }
            FaultKind::DelayAll => {
                let Some(proxies) = self.proxies else {
                    anyhow::bail!(
                        "needs at least 2 coordinators (links go through the fault proxy)"
                    );
                };
                let ids: Vec<u64> = self.cluster.coordinators.iter().map(|c| c.id).collect();
                let delay = LinkFault::Delay(Duration::from_millis(e.ms()));
                for a in &ids {
                    for b in ids.iter().filter(|b| *b != a) {
                        proxies.set_link((*a, *b), Some(delay));
                    }
                }
                self.coord_down.extend(0..ids.len());
                self.probe = Some(super::probe::CommitProbe::start(self.cluster)?);
                self.schedule(self.elapsed() + e.duration(), Event::HealAll);
                self.log(
                    name,
                    format!(
                        "every coordinator link {} ms slower each way for {:?}",
                        e.ms(),
                        e.duration()
                    ),
                );
            }
            FaultKind::CpuHog => {
                let hog = crate::cpu_hog::CpuHog::start(e.count() as usize);
                self.seq += 1;
                let n = self.seq;
                self.hogs.insert(n, hog);
                self.schedule(self.elapsed() + e.duration(), Event::StopHog(n));
                self.log(
                    name,
                    format!("{} cores kept busy for {:?}", e.count(), e.duration()),
                );
            }
            FaultKind::PartitionLeader | FaultKind::DelayLeader => {
                let Some(proxies) = self.proxies else {
                    anyhow::bail!(
                        "needs at least 2 coordinators (links go through the fault proxy)"
                    );
                };
                let (i, id, term) = self.leader().await?;
                let rule = if kind == FaultKind::PartitionLeader {
                    self.failovers.push(FailoverAnchor {
                        at: Instant::now(),
                        term,
                        leader: id,
                        kind,
                    });
                    LinkFault::Blackhole
                } else {
                    LinkFault::Delay(Duration::from_millis(e.ms()))
                };
                proxies.isolate(id, rule);
                self.coord_down.insert(i);
                self.schedule(self.elapsed() + e.duration(), Event::Heal(id));
                self.log(
                    name,
                    format!(
                        "links of coordinator-{id} (leader of term {term}): {rule:?} for {:?}",
                        e.duration()
                    ),
                );
            }
        }
        self.count(kind);
        Ok(())
    }
}

/// Terminates up to `n` backends of the workers (their `application_name`), those inside a
/// transaction first; never the drill's own connections. Returns how many were terminated.
async fn kill_pg_backends(pool: &PgPool, n: u64) -> anyhow::Result<u64> {
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM (
             SELECT pid FROM pg_stat_activity
             WHERE application_name = 'apitap-worker' AND pid <> pg_backend_pid()
             ORDER BY (xact_start IS NULL), random()
             LIMIT $1) AS victims",
    )
    .bind(n as i64)
    .fetch_all(pool)
    .await?;
    Ok(killed.into_iter().filter(|k| *k).count() as u64)
}
