//! openraft's network over tonic: each RPC is a `RaftService` call whose payload is the
//! openraft request or reply as JSON. With TLS configured, peers are dialed over mutual TLS
//! with this node's certificate.
//!
//! One HTTP/2 channel per peer address, made on first use and kept for the life of the
//! node: votes, every leader's replication stream, snapshots and `ensure_linearizable`
//! rounds share it, so a new leader's first heartbeat does not have to dial (TCP + TLS)
//! inside the heartbeat deadline. HTTP/2 pings find a dead connection; the channel then
//! dials again on its next call.
//!
//! Failures are told apart as openraft expects them (see [`classify`]): a call that ran out
//! of time is a `Timeout` (retried at the next heartbeat), a peer that cannot be reached is
//! `Unreachable` (retried after a short back-off, [`NetworkOptions::backoff`]), an append
//! too large for the wire is `PayloadTooLarge` (openraft resends it in smaller batches), and
//! anything else, a refused identity included, is a `Network` error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apitap_proto::tls::{host_of, uri, Tls};
use apitap_proto::v1::raft_service_client::RaftServiceClient;
use apitap_proto::v1::RaftMessage;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, RPCTypes};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::{NodeId, TypeConfig};
use crate::limits::MAX_RAFT_MESSAGE_BYTES;

/// Timing of the connections to the peers.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// Longest wait for a TCP (and TLS) connection to a peer. The dial goes on in the
    /// background after the call that started it has timed out.
    pub connect_timeout: Duration,
    /// HTTP/2 ping interval on every peer connection, also while idle.
    pub keepalive_interval: Duration,
    /// A connection whose ping is not answered within this is closed and dialed again.
    pub keepalive_timeout: Duration,
    /// First pause of replication to a peer that cannot be reached; it doubles up to
    /// `backoff_max`.
    pub backoff_min: Duration,
    /// Longest pause of replication to an unreachable peer. Kept below the election
    /// timeout: a follower that comes back must hear from the leader before it would
    /// start an election of its own.
    pub backoff_max: Duration,
}

impl NetworkOptions {
    /// Back-off derived from the Raft timing: the first pause is one heartbeat, the longest
    /// half the shortest election timeout (never shorter than one heartbeat).
    pub fn new(heartbeat: Duration, election_timeout_min: Duration) -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(5),
            backoff_min: heartbeat,
            backoff_max: (election_timeout_min / 2).max(heartbeat),
        }
    }

    /// The pauses after consecutive `Unreachable` errors: `backoff_min`, doubling, capped
    /// at `backoff_max`.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + Send + 'static {
        let max = self.backoff_max;
        std::iter::successors(Some(self.backoff_min.min(max)), move |d| {
            Some((*d * 2).min(max))
        })
    }
}

impl Default for NetworkOptions {
    fn default() -> Self {
        Self::new(Duration::from_millis(50), Duration::from_millis(150))
    }
}

/// Hands out clients of one shared channel per peer address.
#[derive(Clone, Default)]
pub struct Network {
    /// This node's id, named in `Timeout` errors.
    id: NodeId,
    tls: Option<Tls>,
    options: NetworkOptions,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Network {
    pub fn new(id: NodeId, tls: Option<Tls>, options: NetworkOptions) -> Self {
        Self {
            id,
            tls,
            options,
            channels: Arc::default(),
        }
    }

    /// A `RaftService` client on the shared channel to `addr`, for the coordinator's own
    /// calls (pre-votes, hand-offs).
    pub fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, String> {
        self.channel(addr).map(|ch| {
            RaftServiceClient::new(ch)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
        })
    }

    /// The channel to `addr`, made (without dialing) on first use.
    fn channel(&self, addr: &str) -> Result<Channel, String> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ch) = channels.get(addr) {
            return Ok(ch.clone());
        }
        let o = &self.options;
        let mut endpoint = Endpoint::from_shared(uri(addr, self.tls.is_some())?)
            .map_err(|e| e.to_string())?
            .connect_timeout(o.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(o.keepalive_interval)
            .keep_alive_timeout(o.keepalive_timeout)
            .keep_alive_while_idle(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.client(host_of(addr)))
                .map_err(|e| e.to_string())?;
        }
        let ch = endpoint.connect_lazy();
        channels.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }
}

pub struct Connection {
    id: NodeId,
    target: NodeId,
    /// The client, or why this peer's address cannot be dialed.
    client: Result<RaftServiceClient<Channel>, String>,
    options: NetworkOptions,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Connection {
        let client = self.client(&node.addr).map_err(|e| {
            tracing::error!(peer = %node.addr, error = %e, "cannot dial this peer");
            format!("cannot dial node {target} at {:?}: {e}", node.addr)
        });
        Connection {
            id: self.id,
            target,
            client,
            options: self.options.clone(),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, E>>;

/// What openraft should do about a failed call.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Out of time: retry at the next heartbeat.
    Timeout,
    /// The peer cannot be reached: back off briefly.
    Unreachable,
    /// Too large for the wire or for the peer.
    TooLarge,
    /// The peer refused this node's identity.
    Refused,
    /// Anything else.
    Other,
}

/// Sorts a failed `RaftService` call.
fn classify(status: &Status) -> Failure {
    match status.code() {
        Code::DeadlineExceeded => Failure::Timeout,
        // tonic reports the call's own deadline as `Cancelled` "Timeout expired"; any other
        // cancellation is a connection that closed under the call.
        Code::Cancelled if status.message().contains("Timeout expired") => Failure::Timeout,
        Code::Unavailable | Code::Cancelled => Failure::Unreachable,
        Code::ResourceExhausted => Failure::TooLarge,
        // tonic's own message-size checks (either side) answer `OutOfRange`.
        Code::OutOfRange if status.message().contains("message length too large") => {
            Failure::TooLarge
        }
        Code::Unauthenticated | Code::PermissionDenied => Failure::Refused,
        _ => Failure::Other,
    }
}

fn any_error(msg: String) -> AnyError {
    AnyError::error(msg)
}

impl Connection {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: RPCTypes,
        req: &Req,
        entries: usize,
        timeout: Duration,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let target = self.target;
        let client = match self.client.as_mut() {
            Ok(c) => c,
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::new(&any_error(
                    e.clone(),
                ))))
            }
        };
        let json = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftMessage { json });
        // Lets the peer drop a call nobody waits for any more; openraft itself abandons
        // the call at the same deadline.
        request.set_timeout(timeout);
        let reply = match kind {
            RPCTypes::AppendEntries => client.append_entries(request).await,
            RPCTypes::Vote => client.vote(request).await,
            RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = match reply {
            Ok(r) => r.into_inner(),
            Err(status) => return Err(self.failed(kind, entries, timeout, status)),
        };
        let result: Result<Resp, E> = serde_json::from_slice(&reply.json)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
    }

    /// The openraft error for a failed call of `kind` carrying `entries` log entries.
    fn failed<E: std::error::Error>(
        &self,
        kind: RPCTypes,
        entries: usize,
        timeout: Duration,
        status: Status,
    ) -> RPCError<NodeId, BasicNode, E> {
        let target = self.target;
        match classify(&status) {
            Failure::Timeout => RPCError::Timeout(Timeout {
                action: kind,
                id: self.id,
                target,
                timeout,
            }),
            Failure::Unreachable => RPCError::Unreachable(Unreachable::new(&status)),
            // Half the batch; openraft resends it at once. A single entry cannot be split.
            Failure::TooLarge if kind == RPCTypes::AppendEntries && entries > 1 => {
                RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint((entries / 2) as u64)
                        .with_source_error(&status),
                )
            }
            Failure::TooLarge => RPCError::Network(NetworkError::new(&any_error(format!(
                "node {target} refused a {kind} message as too large ({}); the limit is \
                 MAX_RAFT_MESSAGE_BYTES = {MAX_RAFT_MESSAGE_BYTES} per message",
                status.message()
            )))),
            Failure::Refused => {
                let msg = format!(
                    "node {target} refused this node's {kind} call ({:?}: {}): check that this \
                     node's certificate carries the URI SAN apitap://coordinator/<its id>, is \
                     signed by the cluster's CA, and that this node is a member",
                    status.code(),
                    status.message()
                );
                tracing::error!(peer = target, "{msg}");
                RPCError::Network(NetworkError::new(&any_error(msg)))
            }
            Failure::Other => RPCError::Network(NetworkError::new(&status)),
        }
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let entries = req.entries.len();
        self.call(RPCTypes::AppendEntries, &req, entries, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        self.call(RPCTypes::InstallSnapshot, &req, 0, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(RPCTypes::Vote, &req, 0, option.hard_ttl()).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.options.backoff())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_openraft_does_about_them() {
        let too_long =
            "Error, encoded message length too large: found 9 bytes, the limit is: 8 bytes";
        let cases = [
            (Status::deadline_exceeded(""), Failure::Timeout),
            (Status::cancelled("Timeout expired"), Failure::Timeout),
            (
                Status::unavailable("tcp connect error"),
                Failure::Unreachable,
            ),
            (
                Status::cancelled("operation was canceled: connection closed"),
                Failure::Unreachable,
            ),
            (
                Status::resource_exhausted("snapshot too big"),
                Failure::TooLarge,
            ),
            (Status::out_of_range(too_long), Failure::TooLarge),
            (Status::out_of_range("other"), Failure::Other),
            (Status::permission_denied(""), Failure::Refused),
            (Status::unauthenticated(""), Failure::Refused),
            (Status::internal("h2"), Failure::Other),
        ];
        for (status, want) in cases {
            assert_eq!(classify(&status), want, "{status:?}");
        }
    }

    #[test]
    fn errors_carry_what_openraft_needs() {
        let conn = Connection {
            id: 1,
            target: 2,
            client: Err("unused".into()),
            options: NetworkOptions::default(),
        };
        let t = Duration::from_millis(50);
        let too_large = Status::resource_exhausted("too large");
        let e: RPCError<NodeId, BasicNode, RaftError<NodeId>> =
            conn.failed(RPCTypes::AppendEntries, 10, t, too_large);
        match e {
            RPCError::PayloadTooLarge(p) => assert_eq!(p.entries_hint(), 5),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        // One entry cannot be split, and a vote has no payload to shrink.
        for (kind, n) in [(RPCTypes::AppendEntries, 1), (RPCTypes::Vote, 0)] {
            let e: RPCError<NodeId, BasicNode, RaftError<NodeId>> =
                conn.failed(kind, n, t, Status::resource_exhausted("too large"));
            assert!(matches!(e, RPCError::Network(_)), "{kind}: {e:?}");
        }
        let e: RPCError<NodeId, BasicNode, RaftError<NodeId>> =
            conn.failed(RPCTypes::Vote, 0, t, Status::cancelled("Timeout expired"));
        assert!(matches!(e, RPCError::Timeout(_)), "{e:?}");
        let e: RPCError<NodeId, BasicNode, RaftError<NodeId>> = conn.failed(
            RPCTypes::AppendEntries,
            3,
            t,
            Status::permission_denied("not a member"),
        );
        match e {
            RPCError::Network(n) => assert!(n.to_string().contains("URI SAN"), "{n}"),
            other => panic!("expected a Network error, got {other:?}"),
        }
    }

    #[test]
    fn backoff_starts_at_a_heartbeat_and_stays_under_the_election_timeout() {
        let o = NetworkOptions::new(Duration::from_millis(50), Duration::from_millis(300));
        let pauses: Vec<u128> = o.backoff().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(pauses, [50, 100, 150, 150, 150]);
        let slow = NetworkOptions::new(Duration::from_millis(200), Duration::from_millis(300));
        assert_eq!(slow.backoff().next(), Some(Duration::from_millis(200)));
    }

    #[tokio::test]
    async fn one_channel_per_peer_address() {
        let net = Network::default();
        net.channel("127.0.0.1:1").unwrap();
        net.channel("127.0.0.1:1").unwrap();
        net.channel("127.0.0.1:2").unwrap();
        assert_eq!(net.channels.lock().unwrap().len(), 2);
        assert!(net.channel("not an address").is_err());
    }
}
