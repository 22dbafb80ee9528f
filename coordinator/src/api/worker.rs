//! `WorkerService`: registration and heartbeats (leader memory), and the lease lifecycle
//! reports (Raft commands).

use std::sync::Arc;
use std::time::Instant;

use apitap_proto::v1::worker_service_server::WorkerService;
use apitap_proto::v1::*;
use tonic::{Request, Response, Status};

use super::propose;
use crate::error::Error;
use crate::node::Node;
use crate::state::command::{Command, CommandResult};
use crate::state::model::ShardState;

pub struct WorkerApi {
    pub node: Arc<Node>,
}

type Reply<T> = Result<Response<T>, Status>;

fn lease_ref(l: Option<LeaseRef>) -> Result<LeaseRef, Status> {
    l.ok_or_else(|| Status::invalid_argument("lease is missing"))
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
        let req = req.into_inner();
        if req.worker_id.is_empty() {
            return Err(Status::invalid_argument("worker_id is empty"));
        }
        let known = {
            let st = self.node.state.read().expect("state lock");
            st.state
                .workers
                .get(&req.worker_id)
                .is_some_and(|w| w.addr == req.addr && w.slots == req.slots)
        };
        if !known {
            propose(
                &self.node,
                Command::RegisterWorker {
                    id: req.worker_id.clone(),
                    addr: req.addr.clone(),
                    slots: req.slots,
                    now_ms: apitap_common::time::now_ms(),
                },
            )
            .await?;
        }
        self.node.liveness.lock().expect("liveness lock").heartbeat(
            &req.worker_id,
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
        let req = req.into_inner();
        let now = Instant::now();
        let ttl = self.node.config.lease_ttl;
        let st = self.node.state.read().expect("state lock");
        if !st.state.workers.contains_key(&req.worker_id) {
            return Ok(Response::new(HeartbeatResponse {
                registered: false,
                ..Default::default()
            }));
        }
        let mut live = self.node.liveness.lock().expect("liveness lock");
        live.heartbeat(&req.worker_id, req.free_slots, req.draining, now);
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
        let mut leases = Vec::new();
        for run in st.state.active_runs() {
            let Some(p) = st.state.pipelines.get(&run.pipeline) else {
                continue;
            };
            for s in &run.shards {
                if s.state == ShardState::Leased
                    && s.worker.as_deref() == Some(req.worker_id.as_str())
                {
                    leases.push(Lease {
                        run_id: run.id,
                        shard: s.def.index,
                        fence: s.fence,
                        pipeline: run.pipeline.clone(),
                        spec_yaml: run.spec_yaml.clone(),
                        secrets: p.secrets.clone().into_iter().collect(),
                        vars: s.def.vars.clone().into_iter().collect(),
                        shard_key: s.def.key.clone(),
                    });
                }
            }
        }
        Ok(Response::new(HeartbeatResponse {
            leases,
            revoked,
            registered: true,
        }))
    }

    async fn report_checkpoint(&self, req: Request<CheckpointReport>) -> Reply<Ack> {
        let req = req.into_inner();
        let l = lease_ref(req.lease)?;
        let r = propose(
            &self.node,
            Command::Checkpoint {
                run_id: l.run_id,
                shard: l.shard,
                fence: l.fence,
                checkpoint: req.checkpoint_json,
                pages: req.pages,
                records: req.records,
            },
        )
        .await?;
        Ok(ack(r))
    }

    async fn complete_shard(&self, req: Request<CompleteShardRequest>) -> Reply<Ack> {
        let req = req.into_inner();
        let l = lease_ref(req.lease)?;
        let r = propose(
            &self.node,
            Command::CompleteShard {
                run_id: l.run_id,
                shard: l.shard,
                fence: l.fence,
                ok: req.ok,
                retriable: req.error_class != "user",
                error: (!req.error.is_empty()).then_some(req.error),
                pages: req.pages,
                records: req.records,
                watermark: (!req.watermark.is_empty()).then_some(req.watermark),
                now_ms: apitap_common::time::now_ms(),
            },
        )
        .await?;
        tracing::info!(worker = %req.worker_id, run_id = l.run_id, shard = l.shard, fence = l.fence, ok = req.ok, "shard completed");
        Ok(ack(r))
    }

    async fn release_lease(&self, req: Request<ReleaseLeaseRequest>) -> Reply<Ack> {
        let req = req.into_inner();
        let l = lease_ref(req.lease)?;
        let r = propose(
            &self.node,
            Command::ReleaseLease {
                run_id: l.run_id,
                shard: l.shard,
                fence: l.fence,
                checkpoint: (!req.checkpoint_json.is_empty()).then_some(req.checkpoint_json),
            },
        )
        .await?;
        Ok(ack(r))
    }
}
