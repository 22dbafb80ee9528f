//! openraft's network over tonic: each RPC is a `RaftService` call whose payload is the
//! openraft request or reply as JSON. Every call carries a deadline. With TLS configured,
//! peers are dialed over mutual TLS with this node's certificate.

use std::time::Duration;

use apitap_proto::tls::{host_of, uri, Tls};
use apitap_proto::v1::raft_service_client::RaftServiceClient;
use apitap_proto::v1::RaftMessage;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::{NodeId, TypeConfig};

/// Creates one connection per peer.
#[derive(Clone, Default)]
pub struct Network {
    pub tls: Option<Tls>,
}

pub struct Connection {
    target: NodeId,
    client: Option<RaftServiceClient<Channel>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        let client = uri(&node.addr, self.tls.is_some())
            .and_then(|u| Endpoint::from_shared(u).map_err(|e| e.to_string()))
            .and_then(|e| match &self.tls {
                Some(tls) => e
                    .tls_config(tls.client(host_of(&node.addr)))
                    .map_err(|e| e.to_string()),
                None => Ok(e),
            })
            .map_err(|e| tracing::error!(peer = %node.addr, error = %e, "cannot dial this peer"))
            .ok()
            .map(|e| {
                RaftServiceClient::new(
                    e.connect_timeout(Duration::from_millis(500))
                        .tcp_nodelay(true)
                        .connect_lazy(),
                )
            });
        Connection { target, client }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, E>>;

impl Connection {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: RpcKind,
        req: &Req,
        timeout: Duration,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other("invalid peer address"),
            )));
        };
        let json = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftMessage { json });
        request.set_timeout(timeout);
        let call = async {
            match kind {
                RpcKind::Append => client.append_entries(request).await,
                RpcKind::Vote => client.vote(request).await,
                RpcKind::Snapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(timeout, call).await {
            Err(elapsed) => return Err(RPCError::Unreachable(Unreachable::new(&elapsed))),
            Ok(Err(status)) => return Err(RPCError::Unreachable(Unreachable::new(&status))),
            Ok(Ok(r)) => r.into_inner(),
        };
        let result: Result<Resp, E> = serde_json::from_slice(&reply.json)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum RpcKind {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.call(RpcKind::Append, &req, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call(RpcKind::Snapshot, &req, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(RpcKind::Vote, &req, option.hard_ttl()).await
    }
}
