//! `RaftService`: the receiving side of [`crate::raft::network`].

use std::sync::Arc;

use apitap_proto::v1::raft_service_server::RaftService;
use apitap_proto::v1::RaftMessage;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::limits::MAX_SNAPSHOT_BYTES;
use crate::node::Node;
use crate::raft::election::{PreVote, TimeoutNow};
use crate::raft::TypeConfig;
use apitap_proto::identity::Identity;
use openraft::raft::AppendEntriesResponse;

pub struct RaftApi {
    pub node: Arc<Node>,
}

fn decode<T: serde::de::DeserializeOwned>(req: Request<RaftMessage>) -> Result<T, Status> {
    serde_json::from_slice(&req.into_inner().json)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    serde_json::to_vec(value)
        .map(|json| Response::new(RaftMessage { json }))
        .map_err(|e| Status::internal(e.to_string()))
}

/// Refuses a Raft message whose leader or candidate is not the certificate's coordinator:
/// a member may not speak as another member.
fn speaks_for(caller: &Caller, node_id: Option<u64>) -> Result<(), Status> {
    match caller {
        Caller::Node(Identity::Coordinator(id)) if Some(*id) != node_id => {
            Err(Status::permission_denied(format!(
                "coordinator {id} sent a Raft message on behalf of node {}",
                node_id.map_or("none".into(), |n| n.to_string())
            )))
        }
        _ => Ok(()),
    }
}

/// Decodes a Raft message and refuses it unless the caller is the node `sender` says sent
/// it ([`speaks_for`]).
fn receive<T: serde::de::DeserializeOwned>(
    req: Request<RaftMessage>,
    sender: impl FnOnce(&T) -> Option<u64>,
) -> Result<T, Status> {
    let caller = Caller::of(&req);
    let msg: T = decode(req)?;
    speaks_for(&caller, sender(&msg))?;
    Ok(msg)
}

#[tonic::async_trait]
impl RaftService for RaftApi {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let append = receive::<openraft::raft::AppendEntriesRequest<TypeConfig>>(req, |a| {
            a.vote.leader_id().voted_for()
        })?;
        let r = self.node.raft.append_entries(append).await;
        // Any answer but "I follow a newer vote" means the caller is this node's leader.
        if matches!(&r, Ok(resp) if !matches!(resp, AppendEntriesResponse::HigherVote(_))) {
            self.node.election.heard_from_leader();
        }
        encode(&r)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let vote =
            receive::<openraft::raft::VoteRequest<u64>>(req, |v| v.vote.leader_id().voted_for())?;
        let r = self.node.raft.vote(vote).await;
        if matches!(&r, Ok(resp) if resp.vote_granted) {
            self.node.election.granted();
        }
        encode(&r)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let chunk = receive::<openraft::raft::InstallSnapshotRequest<TypeConfig>>(req, |c| {
            c.vote.leader_id().voted_for()
        })?;
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        if end > MAX_SNAPSHOT_BYTES {
            return Err(Status::resource_exhausted(format!(
                "a snapshot chunk reaching byte {end} is beyond MAX_SNAPSHOT_BYTES \
                 ({MAX_SNAPSHOT_BYTES}); refused before allocating"
            )));
        }
        let r = self.node.raft.install_snapshot(chunk).await;
        if r.is_ok() {
            self.node.election.heard_from_leader();
        }
        encode(&r)
    }

    async fn pre_vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let ask = receive::<PreVote>(req, |a| Some(a.candidate))?;
        let reply = self.node.election.answer(&self.node.raft, &ask);
        tracing::debug!(candidate = ask.candidate, granted = reply.granted, reason = %reply.reason, "pre-vote");
        encode(&reply)
    }

    async fn timeout_now(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let ask = receive::<TimeoutNow>(req, |a| Some(a.leader))?;
        let m = self.node.raft.metrics().borrow().clone();
        // A repeated request finds this node without a leader (its first election
        // failed); one that finds another leader is too late.
        if m.current_leader.is_some_and(|l| l != ask.leader)
            || ask.term < m.current_term.saturating_sub(1)
        {
            return Err(Status::failed_precondition(format!(
                "node {} asked for a hand-off in term {}, but this node follows {:?} in term {}",
                ask.leader, ask.term, m.current_leader, m.current_term
            )));
        }
        tracing::info!(
            leader = ask.leader,
            term = ask.term,
            "leader hands off: electing now"
        );
        self.node
            .raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        encode(&())
    }
}
