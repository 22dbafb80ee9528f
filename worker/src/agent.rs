//! `Agent`: the worker's link to the coordinator. It registers, heartbeats with the leases
//! it holds, starts a `ShardRunner` per new lease, stops revoked ones, reports checkpoints
//! and completions (resending until the leader acknowledges them), and drains on shutdown.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::worker_rpc;
use actix::prelude::*;
use apitap_common::checkpoint::Checkpoint;
use apitap_common::spec;
use apitap_proto::client::LeaderClient;
use apitap_proto::v1::*;
use tokio::sync::watch;

use crate::fetch::Egress;
use crate::metrics::Metrics;
use crate::shard_loop::{LeaseWork, Outcome};
use crate::shard_runner::{Abort, LeaseKey, Progress, RunnerFinished, ShardRunner, StopAfterBatch};

/// Stop taking leases, stop runners at their next batch boundary, release their leases.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// A report the leader has to acknowledge before the lease is forgotten.
#[derive(Debug, Clone)]
enum Report {
    Complete(CompleteShardRequest),
    Release(ReleaseLeaseRequest),
}

struct Running {
    fence: u64,
    addr: Addr<ShardRunner>,
    /// The lease's secret values, redacted from its error and log lines.
    secrets: Vec<String>,
    /// What the shard waits on, sent with every heartbeat.
    waiting: Arc<crate::fetch::breaker_wait::WaitSlot>,
}

pub struct Agent {
    id: String,
    /// Random per process, sent with Register and every heartbeat: while this process is
    /// live, the coordinator refuses another one speaking under the same id.
    instance: String,
    slots: u32,
    client: LeaderClient,
    http: reqwest::Client,
    /// Where fetches may go (the worker's deny-list), for every lease's fetcher.
    egress: Arc<Egress>,
    /// OAuth2 tokens by pipeline, for every lease's fetcher: one token per process and
    /// pipeline, not one per shard.
    tokens: Arc<crate::fetch::TokenCache>,
    /// Memory and time each page's SQL may take.
    transform_limits: crate::transform::TransformLimits,
    /// The folder local sinks must stay inside.
    local_root: Arc<crate::sink::LocalRoot>,
    /// Sink connection pools, shared by every lease loading into one database.
    pools: Arc<crate::sink::SinkPools>,
    /// The records every lease's open batch together may hold.
    batch_memory: Arc<crate::batch_memory::BatchMemory>,
    heartbeat: Duration,
    registered: bool,
    draining: bool,
    /// A heartbeat that said "draining" was answered (or failed): the drain ends only
    /// after that, so that the coordinator shows the worker draining before it leaves.
    drain_told: bool,
    heartbeat_in_flight: bool,
    runners: HashMap<LeaseKey, Running>,
    /// Reports not yet acknowledged, by lease; their leases stay "held" until then.
    reports: HashMap<LeaseKey, (u64, Report, bool)>,
    /// Set to true once a drain has finished.
    drained: watch::Sender<bool>,
    /// Fault injection: do not stop revoked runners (see `Config::ignore_revocations`).
    ignore_revocations: bool,
    /// The worker's metrics: this agent publishes its status there and hands them to runners.
    metrics: Arc<Metrics>,
    /// This worker's rate budgets, started with the agent.
    budget: Option<crate::rate_budget::BudgetHandle>,
    /// The heartbeat timer, replaced when the coordinator asks for another interval.
    ticker: Option<actix::SpawnHandle>,
}

impl Agent {
    pub fn new(
        id: String,
        slots: u32,
        coordinators: Vec<String>,
        drained: watch::Sender<bool>,
        ignore_revocations: bool,
    ) -> Self {
        Self {
            ticker: None,
            budget: None,
            id,
            instance: format!("{:032x}", rand::random::<u128>()),
            slots,
            client: LeaderClient::new(coordinators, Duration::from_secs(2)),
            http: crate::fetch::client::build(Arc::new(Egress::default())).unwrap_or_default(),
            egress: Arc::new(Egress::default()),
            tokens: Default::default(),
            transform_limits: Default::default(),
            local_root: Default::default(),
            pools: Default::default(),
            batch_memory: Default::default(),
            heartbeat: Duration::from_millis(500),
            registered: false,
            draining: false,
            drain_told: false,
            heartbeat_in_flight: false,
            runners: HashMap::new(),
            reports: HashMap::new(),
            drained,
            ignore_revocations,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Counts into `metrics` (shared with the admin server) instead of a private set.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Fetches only where `egress` allows: the HTTP client's resolver and redirect policy,
    /// and every fetcher's URL checks, use it.
    pub fn with_egress(mut self, egress: Arc<Egress>) -> anyhow::Result<Self> {
        self.http = crate::fetch::client::build(egress.clone())?;
        self.egress = egress;
        Ok(self)
    }

    /// Bounds every lease's transform by `limits`.
    pub fn with_transform_limits(mut self, limits: crate::transform::TransformLimits) -> Self {
        self.transform_limits = limits;
        self
    }

    /// Keeps every lease's SQLite file and local files folder inside `root`.
    pub fn with_local_root(mut self, root: crate::sink::LocalRoot) -> Self {
        self.local_root = Arc::new(root);
        self
    }

    /// Shares sink connections through `pools` (`--sink-connections`).
    pub fn with_sink_pools(mut self, pools: crate::sink::SinkPools) -> Self {
        self.pools = Arc::new(pools);
        self
    }

    /// Bounds the records all leases' open batches hold together (`--max-batched-records`).
    pub fn with_batch_memory(mut self, records: u64) -> Self {
        self.batch_memory = Arc::new(crate::batch_memory::BatchMemory::new(records));
        self
    }

    /// Talks to the coordinators over mutual TLS.
    pub fn with_tls(mut self, tls: Option<apitap_proto::tls::Tls>) -> Self {
        self.client = self.client.with_tls(tls);
        self
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.registered {
            self.register(ctx);
        } else {
            self.send_heartbeat(ctx);
        }
        self.send_reports(ctx);
        self.check_drained();
        let held = self.runners.len() + self.reports.len();
        self.metrics
            .agent_status(self.registered, self.draining, held);
    }

    fn register(&mut self, ctx: &mut Context<Self>) {
        if self.heartbeat_in_flight {
            return;
        }
        let req = RegisterRequest {
            worker_id: self.id.clone(),
            addr: String::new(),
            slots: self.slots,
            instance: self.instance.clone(),
        };
        let rpc = |mut c: worker_rpc::Stub, r| async move { c.register(r).await };
        self.heartbeat_call(ctx, req, rpc, |act, ctx, r| match r {
            Ok(resp) => {
                act.registered = true;
                let hb = Duration::from_millis(resp.heartbeat_interval_ms.max(50));
                if hb != act.heartbeat {
                    act.heartbeat = hb;
                    if let Some(old) = act.ticker.take() {
                        ctx.cancel_future(old);
                    }
                    act.ticker = Some(ctx.run_interval(hb, |act, ctx| act.tick(ctx)));
                }
                tracing::info!(worker = %act.id, "registered with the coordinator");
                act.send_heartbeat(ctx);
            }
            Err(e) => tracing::warn!(error = %e.message(), "registration failed; retrying"),
        });
    }

    /// Registers or heartbeats (`rpc` with `req`; never both at once), then hands the
    /// answer to `done`. The client comes back to the actor afterwards, with the leader
    /// it found.
    fn heartbeat_call<Req, T, F, Fut>(
        &mut self,
        ctx: &mut Context<Self>,
        req: Req,
        rpc: F,
        done: impl FnOnce(&mut Self, &mut Context<Self>, Result<T, tonic::Status>) + 'static,
    ) where
        Req: Clone + 'static,
        T: 'static,
        F: Fn(worker_rpc::Stub, Req) -> Fut + 'static,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + 'static,
    {
        self.heartbeat_in_flight = true;
        let mut client = self.client.clone();
        let fut = async move {
            let r = worker_rpc::call(&mut client, req, rpc).await;
            (client, r)
        };
        ctx.spawn(fut.into_actor(self).map(move |(client, r), act, ctx| {
            act.client = client;
            act.heartbeat_in_flight = false;
            done(act, ctx, r);
        }));
    }

    fn held(&self) -> Vec<LeaseRef> {
        let running = self.runners.iter().map(|(k, r)| (*k, r.fence));
        let reporting = self.reports.iter().map(|(k, (fence, _, _))| (*k, *fence));
        running
            .chain(reporting)
            .map(|((run_id, shard), fence)| LeaseRef {
                run_id,
                shard,
                fence,
            })
            .collect()
    }

    /// The leases whose shard waits on an open circuit breaker now.
    fn breaker_waits(&self) -> Vec<BreakerWait> {
        self.runners
            .iter()
            .filter_map(|(&(run_id, shard), r)| {
                let w = r.waiting.get()?;
                Some(BreakerWait {
                    lease: Some(LeaseRef {
                        run_id,
                        shard,
                        fence: r.fence,
                    }),
                    breaker: Some(BreakerInfo {
                        host: w.host,
                        state: w.state.into(),
                        until_ms: w.until_ms,
                    }),
                })
            })
            .collect()
    }

    fn send_heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.heartbeat_in_flight {
            return;
        }
        let busy = (self.runners.len() + self.reports.len()) as u32;
        let req = HeartbeatRequest {
            worker_id: self.id.clone(),
            held: self.held(),
            free_slots: if self.draining {
                0
            } else {
                self.slots.saturating_sub(busy)
            },
            draining: self.draining,
            instance: self.instance.clone(),
            waits: self.breaker_waits(),
        };
        let rpc = |mut c: worker_rpc::Stub, r| async move { c.heartbeat(r).await };
        let said_draining = self.draining;
        self.heartbeat_call(ctx, req, rpc, move |act, ctx, r| {
            match r {
                Ok(resp) if !resp.registered => act.registered = false,
                Ok(resp) => act.apply_heartbeat(resp, ctx),
                Err(e) => tracing::warn!(error = %e.message(), "heartbeat failed"),
            }
            if said_draining {
                act.drain_told = true;
                act.check_drained();
            }
        });
    }

    fn apply_heartbeat(&mut self, resp: HeartbeatResponse, ctx: &mut Context<Self>) {
        for r in resp.revoked {
            let key = (r.run_id, r.shard);
            if self.ignore_revocations {
                tracing::warn!(
                    run_id = r.run_id,
                    shard = r.shard,
                    fence = r.fence,
                    "fault injection: ignoring a lease revocation"
                );
                continue;
            }
            if let Some(run) = self.runners.get(&key).filter(|run| run.fence == r.fence) {
                tracing::warn!(
                    run_id = r.run_id,
                    shard = r.shard,
                    fence = r.fence,
                    "lease revoked; stopping its runner"
                );
                run.addr.do_send(Abort);
                self.runners.remove(&key);
            }
            if self
                .reports
                .get(&key)
                .is_some_and(|(f, _, _)| *f == r.fence)
            {
                self.reports.remove(&key);
            }
        }
        if self.draining {
            return;
        }
        for lease in resp.leases {
            let key = (lease.run_id, lease.shard);
            if self.runners.contains_key(&key) || self.reports.contains_key(&key) {
                continue;
            }
            let fence = lease.fence;
            let secrets: Vec<String> = lease.secrets.values().cloned().collect();
            match self.lease_work(lease) {
                Ok(work) => {
                    let waiting = work.breaker_wait.clone();
                    tracing::info!(run_id = key.0, shard = key.1, fence, pipeline = %work.pipeline.name(), "lease started");
                    let addr = ShardRunner::new(
                        work,
                        self.http.clone(),
                        ctx.address().recipient(),
                        ctx.address().recipient(),
                    )
                    .start();
                    self.runners.insert(
                        key,
                        Running {
                            fence,
                            addr,
                            secrets,
                            waiting,
                        },
                    );
                }
                Err(error) => {
                    let error = spec::secrets::redact(&error, &secrets);
                    tracing::error!(run_id = key.0, shard = key.1, %error, "cannot start the lease");
                    self.queue_complete(key, fence, false, error, "user", None);
                }
            }
        }
    }

    /// Parses the lease's spec and substitutes its secrets: only the values sent with the
    /// lease, never the worker's own environment, whose credentials must not reach a URL a
    /// pipeline names.
    fn lease_work(&self, lease: Lease) -> Result<LeaseWork, String> {
        let pipeline =
            spec::load(&lease.pipeline, &lease.spec_yaml, None).map_err(|e| e.to_string())?;
        let secrets: BTreeMap<String, String> = lease.secrets.into_iter().collect();
        let pipeline = spec::secrets::resolve(&pipeline, &secrets).map_err(|e| {
            format!(
                "{e} (secrets come only with the lease, for the pipeline version the run \
                 started with; if the pipeline was changed since, start a new run)"
            )
        })?;
        Ok(LeaseWork {
            run_id: lease.run_id,
            shard: lease.shard,
            fence: lease.fence,
            shard_key: lease.shard_key,
            pipeline,
            vars: lease.vars.into_iter().collect(),
            worker: self.id.clone(),
            metrics: self.metrics.clone(),
            budget: self.budget.clone(),
            traceparent: (!lease.traceparent.is_empty()).then_some(lease.traceparent),
            egress: self.egress.clone(),
            tokens: self.tokens.clone(),
            transform_limits: self.transform_limits,
            local_root: self.local_root.clone(),
            breaker_wait: Default::default(),
            pools: self.pools.clone(),
            batch_memory: self.batch_memory.clone(),
        })
    }

    fn queue_complete(
        &mut self,
        key: LeaseKey,
        fence: u64,
        ok: bool,
        error: String,
        class: &str,
        cp: Option<&Checkpoint>,
    ) {
        let req = CompleteShardRequest {
            worker_id: self.id.clone(),
            lease: Some(LeaseRef {
                run_id: key.0,
                shard: key.1,
                fence,
            }),
            ok,
            error,
            error_class: class.to_string(),
            pages: cp.map(|c| c.pages).unwrap_or(0),
            records: cp.map(|c| c.records).unwrap_or(0),
            watermark: cp.and_then(|c| c.watermark.clone()).unwrap_or_default(),
            dead_letters: 0,
            dead_letter_sample: Vec::new(),
        };
        self.reports
            .insert(key, (fence, Report::Complete(req), false));
    }

    fn send_reports(&mut self, ctx: &mut Context<Self>) {
        let mut due = Vec::new();
        for (key, (fence, report, in_flight)) in self.reports.iter_mut() {
            if !*in_flight {
                *in_flight = true;
                due.push((*key, *fence, report.clone()));
            }
        }
        for (key, fence, report) in due {
            let mut client = self.client.clone();
            let fut = async move {
                worker_rpc::call(&mut client, report, |mut c, report| async move {
                    match report {
                        Report::Complete(r) => c.complete_shard(r).await,
                        Report::Release(r) => c.release_lease(r).await,
                    }
                })
                .await
            };
            ctx.spawn(fut.into_actor(self).map(move |r, act, _| match r {
                Ok(ack) => {
                    if !ack.accepted {
                        tracing::warn!(run_id = key.0, shard = key.1, fence, reason = %ack.reason, "report rejected by the coordinator");
                    }
                    if act.reports.get(&key).is_some_and(|(f, _, _)| *f == fence) {
                        act.reports.remove(&key);
                    }
                    act.check_drained();
                }
                Err(e) => {
                    tracing::warn!(run_id = key.0, shard = key.1, error = %e.message(), "report failed; will resend");
                    if let Some((_, _, in_flight)) = act.reports.get_mut(&key) {
                        *in_flight = false;
                    }
                }
            }));
        }
    }

    fn check_drained(&self) {
        let told = self.drain_told || !self.registered;
        if self.draining && told && self.runners.is_empty() && self.reports.is_empty() {
            self.drained.send_replace(true);
        }
    }
}

impl Actor for Agent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        // Budget renewals use the agent's addresses and TLS, on a connection of their own,
        // with a deadline shorter than a grant's TTL.
        let client = self.client.clone().with_timeout(Duration::from_millis(900));
        let budget = crate::rate_budget::RateBudget::new(self.id.clone(), client).start();
        self.budget = Some(crate::rate_budget::BudgetHandle::new(budget));
        self.tick(ctx);
        self.ticker = Some(ctx.run_interval(self.heartbeat, |act, ctx| act.tick(ctx)));
    }
}

impl Handler<Progress> for Agent {
    type Result = ();
    fn handle(&mut self, msg: Progress, ctx: &mut Self::Context) {
        let req = CheckpointReport {
            worker_id: self.id.clone(),
            lease: Some(LeaseRef {
                run_id: msg.key.0,
                shard: msg.key.1,
                fence: msg.fence,
            }),
            checkpoint_json: msg.checkpoint.to_json(),
            pages: msg.checkpoint.pages,
            records: msg.checkpoint.records,
        };
        // Best effort: the sink holds the authoritative checkpoint.
        worker_rpc::report(ctx, &self.client, req, |mut c, r| async move {
            c.report_checkpoint(r).await
        });
    }
}

impl Handler<RunnerFinished> for Agent {
    type Result = ();
    fn handle(&mut self, msg: RunnerFinished, ctx: &mut Self::Context) {
        let key = msg.key;
        let secrets = match self.runners.get(&key) {
            Some(r) if r.fence == msg.fence => self
                .runners
                .remove(&key)
                .map(|r| r.secrets)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        match msg.outcome {
            Outcome::Done(cp) => {
                tracing::info!(
                    run_id = key.0,
                    shard = key.1,
                    fence = msg.fence,
                    pages = cp.pages,
                    records = cp.records,
                    "shard done"
                );
                self.queue_complete(key, msg.fence, true, String::new(), "", Some(&cp));
            }
            Outcome::Fenced { stored } => {
                self.metrics.fence_rejections.inc();
                tracing::warn!(
                    run_id = key.0,
                    shard = key.1,
                    fence = msg.fence,
                    stored_fence = stored,
                    "commit rejected: a newer lease owns the shard; dropping this lease"
                );
            }
            Outcome::Stopped(cp) => {
                let req = ReleaseLeaseRequest {
                    worker_id: self.id.clone(),
                    lease: Some(LeaseRef {
                        run_id: key.0,
                        shard: key.1,
                        fence: msg.fence,
                    }),
                    checkpoint_json: cp.to_json(),
                };
                self.reports
                    .insert(key, (msg.fence, Report::Release(req), false));
            }
            Outcome::Failed {
                error,
                class,
                checkpoint,
                dead_letters,
            } => {
                let error = spec::secrets::redact(&error, &secrets);
                tracing::error!(run_id = key.0, shard = key.1, fence = msg.fence, %error, "shard failed");
                let class = match class {
                    apitap_common::error::ErrorClass::User => "user",
                    apitap_common::error::ErrorClass::Transient => "transient",
                    apitap_common::error::ErrorClass::Internal => "internal",
                };
                self.queue_complete(key, msg.fence, false, error, class, checkpoint.as_ref());
                if let (Some(dead), Some((_, Report::Complete(req), _))) =
                    (dead_letters, self.reports.get_mut(&key))
                {
                    req.dead_letters = dead.records;
                    req.dead_letter_sample = dead
                        .sample
                        .into_iter()
                        .map(|mut d| {
                            d.error = spec::secrets::redact(&d.error, &secrets);
                            d.record = spec::secrets::redact(&d.record, &secrets);
                            d
                        })
                        .collect();
                }
            }
        }
        self.send_reports(ctx);
        self.check_drained();
    }
}

impl Handler<Drain> for Agent {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        tracing::info!(
            runners = self.runners.len(),
            "draining: finishing current batches, then releasing leases"
        );
        self.draining = true;
        for r in self.runners.values() {
            r.addr.do_send(StopAfterBatch);
        }
        self.send_heartbeat(ctx);
        self.check_drained();
    }
}
