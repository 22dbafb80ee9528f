//! `WorkerService`: registration and heartbeats (leader memory), and the lease lifecycle
//! reports (Raft commands).

use std::sync::Arc;
use std::time::Instant;

use apitap_proto::limits::{
    truncate_utf8, MAX_CHECKPOINT_BYTES, MAX_DEAD_LETTER_RECORD_BYTES, MAX_DEAD_LETTER_SAMPLE,
    MAX_ERROR_BYTES, MAX_RETRY_AFTER_MS, MAX_WORKER_SLOTS,
};
use apitap_proto::v1::worker_service_server::WorkerService;
use apitap_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::error::Error;
use crate::node::Node;
use crate::spans;
use crate::state::command::{self, Command, CommandResult};
use crate::state::model::{DeadLetterSample, PipelineRecord, Run, ShardState, State};

pub struct WorkerApi {
    pub node: Arc<Node>,
}

type Reply<T> = Result<Response<T>, Status>;

/// The lease a report is about and the reporting worker, which every lease report must
/// name (and, with TLS, the caller's certificate must name too): `apply` accepts a report
/// only from the shard's holder.
fn reported_lease(
    caller: &Caller,
    worker_id: &str,
    lease: Option<LeaseRef>,
) -> Result<(LeaseRef, String), Status> {
    caller.check_worker(worker_id)?;
    let lease = lease.ok_or_else(|| Status::invalid_argument("lease is missing"))?;
    if worker_id.is_empty() {
        return Err(Status::invalid_argument(
            "worker_id is empty; every lease report must name the worker that holds the lease",
        ));
    }
    Ok((lease, worker_id.to_string()))
}

/// The newest `MAX_DEAD_LETTER_SAMPLE` entries of a report, each cut to its bounds before
/// it becomes a Raft entry (`apply` bounds them again).
fn dead_letter_sample(sample: &[DeadLetter]) -> Vec<DeadLetterSample> {
    let newest = sample.len().saturating_sub(MAX_DEAD_LETTER_SAMPLE);
    sample
        .iter()
        .skip(newest)
        .map(|d| DeadLetterSample {
            page: d.page,
            error: truncate_utf8(&d.error, MAX_ERROR_BYTES),
            record: truncate_utf8(&d.record, MAX_DEAD_LETTER_RECORD_BYTES),
        })
        .collect()
}

fn ack(r: CommandResult) -> Response<Ack> {
    match r {
        CommandResult::Rejected { reason } => Response::new(Ack {
            accepted: false,
            reason,
        }),
        _ => Response::new(Ack {
            accepted: true,
            reason: String::new(),
        }),
    }
}

impl WorkerApi {
    /// The leases `req`'s worker holds and did not list: a lease's body (spec and secrets)
    /// goes out once, so leases the worker already holds are not sent again.
    fn new_leases(&self, state: &State, req: &HeartbeatRequest) -> Vec<Lease> {
        let held: std::collections::HashSet<(u64, u32, u64)> = req
            .held
            .iter()
            .map(|h| (h.run_id, h.shard, h.fence))
            .collect();
        let mut leases = Vec::new();
        for run in state.active_runs() {
            let Some(p) = state.pipelines.get(&state.pipeline_key_of_run(run)) else {
                continue;
            };
            // Opened only when a lease of this run actually goes out.
            let mut secrets: Option<std::collections::HashMap<String, String>> = None;
            for s in &run.shards {
                if s.state == ShardState::Leased
                    && s.worker.as_deref() == Some(req.worker_id.as_str())
                    && !held.contains(&(run.id, s.def.index, s.fence))
                {
                    leases.push(Lease {
                        run_id: run.id,
                        shard: s.def.index,
                        fence: s.fence,
                        pipeline: run.pipeline.clone(),
                        spec_yaml: run.spec_yaml.clone(),
                        secrets: secrets
                            .get_or_insert_with(|| self.run_secrets(run, p))
                            .clone(),
                        vars: s.def.vars.clone().into_iter().collect(),
                        shard_key: s.def.key.clone(),
                        traceparent: s.trace.clone().unwrap_or_default(),
                    });
                }
            }
        }
        leases
    }

    /// The secret values of `run`: those of the pipeline version it started with, never
    /// those of a later version (or of a re-created pipeline).
    fn run_secrets(
        &self,
        run: &Run,
        p: &PipelineRecord,
    ) -> std::collections::HashMap<String, String> {
        let stored = if !run.secrets.is_empty() {
            &run.secrets
        } else if run.pipeline_version == p.version {
            // Runs started before runs kept their own copy.
            &p.secrets
        } else {
            return Default::default();
        };
        match self
            .node
            .secrets
            .open_pipeline(&p.namespace, &p.name, stored)
        {
            Ok(s) => s.into_iter().collect(),
            Err(e) => {
                tracing::error!(pipeline = %p.name, run_id = run.id, error = %e, "cannot open the run's secrets; its leases go out without them");
                Default::default()
            }
        }
    }

    /// Refuses a second process speaking as a live worker's id (a copy started with the same
    /// `--id`, or someone taking over its leases and their secrets).
    fn claim(&self, worker: &str, instance: &str) -> Result<(), Status> {
        crate::liveness::check_instance(instance).map_err(Status::invalid_argument)?;
        let ttl = self.node.config.lease_ttl;
        let live = self.node.liveness();
        live.may_claim(worker, instance, ttl, Instant::now())
            .map_err(|ago| {
                tracing::warn!(worker, "refused a second process speaking as a live worker");
                Status::already_exists(format!(
                    "worker id {worker} is held by another live process (heard {} ms ago); give \
                     this worker another --id, or stop the other one (an id is free {} s after \
                     its holder's last heartbeat)",
                    ago.as_millis(),
                    ttl.as_secs()
                ))
            })
    }

    fn require_leader(&self) -> Result<(), Status> {
        if self.node.is_leader() {
            Ok(())
        } else {
            Err(Error::NotLeader {
                leader_addr: self.node.leader_addr(),
            }
            .into())
        }
    }
}

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    async fn register(&self, req: Request<RegisterRequest>) -> Reply<RegisterResponse> {
        self.require_leader()?;
        let caller = Caller::of(&req);
        let req = req.into_inner();
        caller.check_worker(&req.worker_id)?;
        if req.worker_id.is_empty() {
            return Err(Status::invalid_argument("worker_id is empty"));
        }
        if req.slots == 0 || req.slots > MAX_WORKER_SLOTS {
            return Err(Status::invalid_argument(format!(
                "worker {} asked for {} slots; a worker has 1..={MAX_WORKER_SLOTS} slots \
                 (MAX_WORKER_SLOTS): lower --slots",
                req.worker_id, req.slots
            )));
        }
        self.claim(&req.worker_id, &req.instance)?;
        let known = {
            let st = self.node.state();
            st.state
                .workers
                .get(&req.worker_id)
                .is_some_and(|w| w.addr == req.addr && w.slots == req.slots)
        };
        if !known {
            self.node
                .propose(Command::RegisterWorker(command::RegisterWorker {
                    id: req.worker_id.clone(),
                    addr: req.addr.clone(),
                    slots: req.slots,
                    now_ms: apitap_common::time::now_ms(),
                    max_workers: self.node.config.max_workers,
                }))
                .await?;
        }
        self.node.liveness().heartbeat(
            &req.worker_id,
            &req.instance,
            req.slots,
            false,
            Instant::now(),
        );
        tracing::info!(worker = %req.worker_id, addr = %req.addr, slots = req.slots, "worker registered");
        Ok(Response::new(RegisterResponse {
            heartbeat_interval_ms: self.node.config.worker_heartbeat.as_millis() as u64,
            lease_ttl_ms: self.node.config.lease_ttl.as_millis() as u64,
        }))
    }

    async fn heartbeat(&self, req: Request<HeartbeatRequest>) -> Reply<HeartbeatResponse> {
        self.require_leader()?;
        let caller = Caller::of(&req);
        let req = req.into_inner();
        caller.check_worker(&req.worker_id)?;
        self.claim(&req.worker_id, &req.instance)?;
        let now = Instant::now();
        let ttl = self.node.config.lease_ttl;
        let st = self.node.state();
        if !st.state.workers.contains_key(&req.worker_id) {
            return Ok(Response::new(HeartbeatResponse {
                registered: false,
                ..Default::default()
            }));
        }
        let mut live = self.node.liveness();
        live.heartbeat(
            &req.worker_id,
            &req.instance,
            req.free_slots,
            req.draining,
            now,
        );
        live.set_waits(
            &req.worker_id,
            crate::liveness::breaker_waits(&req.waits, &req.held),
        );
        let mut revoked = Vec::new();
        for h in &req.held {
            let current = st.state.runs.get(&h.run_id).and_then(|r| {
                r.shards.iter().find(|s| {
                    s.def.index == h.shard
                        && s.fence == h.fence
                        && s.state == ShardState::Leased
                        && s.worker.as_deref() == Some(req.worker_id.as_str())
                        && !r.state.is_terminal()
                })
            });
            if current.is_some() {
                live.renew((h.run_id, h.shard, h.fence), ttl, now);
            } else {
                revoked.push(*h);
            }
        }
        let leases = self.new_leases(&st.state, &req);
        Ok(Response::new(HeartbeatResponse {
            leases,
            revoked,
            registered: true,
        }))
    }

    async fn report_checkpoint(&self, req: Request<CheckpointReport>) -> Reply<Ack> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        let (l, worker) = reported_lease(&caller, &req.worker_id, req.lease)?;
        if req.checkpoint_json.len() > MAX_CHECKPOINT_BYTES {
            return Err(Status::invalid_argument(format!(
                "checkpoint of {} bytes is over MAX_CHECKPOINT_BYTES ({MAX_CHECKPOINT_BYTES})",
                req.checkpoint_json.len()
            )));
        }
        let r = self
            .node
            .propose(Command::Checkpoint(command::Checkpoint {
                run_id: l.run_id,
                shard: l.shard,
                fence: l.fence,
                checkpoint: req.checkpoint_json,
                pages: req.pages,
                records: req.records,
                worker,
            }))
            .await?;
        Ok(ack(r))
    }

    async fn complete_shard(&self, req: Request<CompleteShardRequest>) -> Reply<Ack> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        let (l, worker) = reported_lease(&caller, &req.worker_id, req.lease)?;
        let span = {
            let st = self.node.state();
            st.state
                .runs
                .get(&l.run_id)
                .and_then(|run| {
                    let shard = run.shards.iter().find(|s| s.def.index == l.shard)?;
                    (shard.fence == l.fence).then(|| spans::complete_shard(run, shard, req.ok))
                })
                .unwrap_or_else(tracing::Span::none)
        };
        let r = self
            .node
            .propose_traced(
                Command::CompleteShard(command::CompleteShard {
                    run_id: l.run_id,
                    shard: l.shard,
                    fence: l.fence,
                    ok: req.ok,
                    retriable: req.error_class != "user",
                    error: (!req.error.is_empty())
                        .then(|| truncate_utf8(&req.error, MAX_ERROR_BYTES)),
                    pages: req.pages,
                    records: req.records,
                    watermark: (!req.watermark.is_empty()).then_some(req.watermark),
                    now_ms: apitap_common::time::now_ms(),
                    worker,
                    dead_letters: req.dead_letters,
                    dead_letter_sample: dead_letter_sample(&req.dead_letter_sample),
                }),
                &span,
            )
            .await?;
        tracing::info!(worker = %req.worker_id, run_id = l.run_id, shard = l.shard, fence = l.fence, ok = req.ok, "shard completed");
        Ok(ack(r))
    }

    async fn acquire_budget(&self, req: Request<BudgetRequest>) -> Reply<BudgetGrant> {
        self.require_leader()?;
        let caller = Caller::of(&req);
        let req = req.into_inner();
        caller.check_worker(&req.worker_id)?;
        let limit = {
            let st = self.node.state();
            st.state.rate_limits.get(&req.key).cloned()
        };
        let Some(limit) = limit else {
            return Ok(Response::new(BudgetGrant::default()));
        };
        let term = self.node.raft.metrics().borrow().current_term;
        let ask = crate::ratelimit::Ask {
            key: &req.key,
            limit: limit.rps,
            burst: limit.burst,
            worker: &req.worker_id,
            wants: req.wants_rps,
            has: req.has_rps,
            used: req.used,
        };
        let rps = self
            .node
            .budgets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .acquire(term, ask, Instant::now());
        Ok(Response::new(BudgetGrant {
            limited: true,
            rps,
            burst: limit.burst,
            ttl_ms: crate::ratelimit::GRANT_TTL.as_millis() as u64,
            backoff_until_ms: limit.backoff_until_ms,
            limit_rps: limit.rps,
        }))
    }

    async fn report_backoff(&self, req: Request<BackoffReport>) -> Reply<Ack> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        caller.check_worker(&req.worker_id)?;
        self.require_leader()?;
        let now_ms = apitap_common::time::now_ms();
        // Clamped here and again in `apply`: an upstream's ten-year Retry-After must not
        // stop a key for ten years.
        let until_ms = now_ms.saturating_add(req.retry_after_ms.min(MAX_RETRY_AFTER_MS));
        if req.retry_after_ms > MAX_RETRY_AFTER_MS {
            tracing::warn!(key = %req.key, worker = %req.worker_id, retry_after_ms = req.retry_after_ms, max_ms = MAX_RETRY_AFTER_MS, "retry-after clamped to MAX_RETRY_AFTER_MS");
        }
        // Push first, commit second: workers stop within milliseconds instead of after a
        // synced Raft write; the commit makes the back-off outlive this leader.
        let known = self.node.state().state.rate_limits.contains_key(&req.key);
        if known {
            let _ = self.node.backoffs.send(BackoffEvent {
                key: req.key.clone(),
                until_ms,
            });
        }
        let r = self
            .node
            .propose(Command::Backoff(command::Backoff {
                key: req.key.clone(),
                until_ms,
                now_ms,
            }))
            .await?;
        if !matches!(r, CommandResult::Rejected { .. }) {
            tracing::info!(key = %req.key, worker = %req.worker_id, retry_after_ms = req.retry_after_ms, "cluster-wide back-off");
        }
        Ok(ack(r))
    }

    type WatchBackoffsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<BackoffEvent, Status>> + Send>>;

    async fn watch_backoffs(
        &self,
        req: Request<WatchBackoffsRequest>,
    ) -> Reply<Self::WatchBackoffsStream> {
        Caller::of(&req).check_worker(&req.get_ref().worker_id)?;
        self.require_leader()?;
        let rx = self.node.backoffs.subscribe();
        let current: Vec<Result<BackoffEvent, Status>> = {
            let st = self.node.state();
            st.state
                .rate_limits
                .values()
                .filter(|l| l.backoff_until_ms > apitap_common::time::now_ms())
                .map(|l| {
                    Ok(BackoffEvent {
                        key: l.key.clone(),
                        until_ms: l.backoff_until_ms,
                    })
                })
                .collect()
        };
        // Ends once this node no longer leads, so that the worker reconnects to the leader.
        let node = self.node.clone();
        let live = futures::stream::unfold((rx, node), |(mut rx, node)| async move {
            loop {
                match tokio::time::timeout(std::time::Duration::from_millis(500), rx.recv()).await {
                    Ok(Ok(e)) => return Some((Ok(e), (rx, node))),
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                    Err(_) if node.is_leader() => continue,
                    Err(_) => return None,
                }
            }
        });
        use futures::StreamExt;
        Ok(Response::new(Box::pin(
            futures::stream::iter(current).chain(live),
        )))
    }

    async fn release_lease(&self, req: Request<ReleaseLeaseRequest>) -> Reply<Ack> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        let (l, worker) = reported_lease(&caller, &req.worker_id, req.lease)?;
        let r = self
            .node
            .propose(Command::ReleaseLease(command::ReleaseLease {
                run_id: l.run_id,
                shard: l.shard,
                fence: l.fence,
                checkpoint: (!req.checkpoint_json.is_empty()).then_some(req.checkpoint_json),
                worker,
            }))
            .await?;
        Ok(ack(r))
    }
}
