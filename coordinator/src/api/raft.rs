//! `RaftService`: the receiving side of [`crate::raft::network`].

use std::sync::Arc;

use apitap_proto::v1::raft_service_server::RaftService;
use apitap_proto::v1::RaftMessage;
use tonic::{Request, Response, Status};

use crate::limits::MAX_SNAPSHOT_BYTES;
use crate::node::Node;

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

#[tonic::async_trait]
impl RaftService for RaftApi {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let r = self.node.raft.append_entries(decode(req)?).await;
        encode(&r)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let r = self.node.raft.vote(decode(req)?).await;
        encode(&r)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let chunk: openraft::raft::InstallSnapshotRequest<crate::raft::TypeConfig> = decode(req)?;
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        if end > MAX_SNAPSHOT_BYTES {
            return Err(Status::resource_exhausted(format!(
                "a snapshot chunk reaching byte {end} is beyond MAX_SNAPSHOT_BYTES \
                 ({MAX_SNAPSHOT_BYTES}); refused before allocating"
            )));
        }
        let r = self.node.raft.install_snapshot(chunk).await;
        encode(&r)
    }
}
