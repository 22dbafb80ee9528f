//! Leadership hand-off when a leader stops (SIGTERM): the most caught-up voter is asked to
//! elect at once ([`super::election::TimeoutNow`]), so the cluster has a new leader within
//! a round trip or two instead of an election timeout.
//!
//! The successor's vote request reaches this node, whose own lease has long expired (a
//! leader's lease is not refreshed while it leads), so this node grants it and steps down;
//! with its own vote that makes a majority of three. A leader that took office less than an
//! election timeout ago may refuse; then the election timer of the others takes over.

use std::time::Duration;

use apitap_proto::v1::RaftMessage;
use openraft::ServerState;

use super::election::TimeoutNow;
use super::network::Network;
use super::{NodeId, Raft};

/// The voter (other than `me`) whose replicated log is the newest, if any.
fn successor(raft: &Raft, me: NodeId) -> Option<(NodeId, String)> {
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let replication = m.replication.as_ref()?;
    membership
        .voter_ids()
        .filter(|v| *v != me)
        .max_by_key(|v| replication.get(v).cloned().flatten().map(|l| l.index))
        .and_then(|v| Some((v, membership.get_node(&v)?.addr.clone())))
}

/// Hands leadership to another voter and waits, at most `within`, until this node no
/// longer leads. Returns the successor; an error says why no hand-off happened (not the
/// leader, no other voter, no answer), and the caller stops anyway.
pub async fn hand_off(
    raft: &Raft,
    me: NodeId,
    network: &Network,
    within: Duration,
) -> Result<NodeId, String> {
    if raft.metrics().borrow().state != ServerState::Leader {
        return Err("this node does not lead".into());
    }
    let (target, addr) = successor(raft, me).ok_or("no other voter")?;
    // Let the successor catch up with what is already in this node's log: a successor
    // that is behind cannot win the election.
    let last = raft.metrics().borrow().last_log_index;
    let caught_up = raft
        .wait(Some(within / 2))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&target).cloned().flatten())
                    .map(|l| l.index)
                    >= last
            },
            "successor caught up",
        )
        .await;
    if let Err(e) = caught_up {
        tracing::warn!(
            successor = target,
            "hand-off to a successor still behind: {e}"
        );
    }
    // The successor's first election can fail: a leader of less than an election timeout
    // still holds its vote lease and refuses. It steps down on the successor's higher term,
    // and asked again the successor wins, so the request is repeated a few times.
    let deadline = tokio::time::Instant::now() + within / 2;
    let mut last_error = String::new();
    while tokio::time::Instant::now() < deadline {
        let term = raft.metrics().borrow().current_term;
        match ask_to_elect(network, &addr, me, term, within / 4).await {
            Ok(()) => {}
            Err(e) => last_error = format!("node {target} did not take over: {e}"),
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let led = raft
            .wait(Some(ATTEMPT.min(left)))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != me),
                "another node leads",
            )
            .await;
        match led {
            Ok(_) => return Ok(target),
            Err(e) if last_error.is_empty() => {
                last_error = format!("node {target} was asked to take over, but: {e}")
            }
            Err(_) => {}
        }
    }
    Err(last_error)
}

/// How long one request to elect gets before it is repeated.
const ATTEMPT: Duration = Duration::from_millis(300);

/// Sends `TimeoutNow` to the successor at `addr`.
async fn ask_to_elect(
    network: &Network,
    addr: &str,
    me: NodeId,
    term: u64,
    timeout: Duration,
) -> Result<(), String> {
    let json = serde_json::to_vec(&TimeoutNow { leader: me, term }).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(RaftMessage { json });
    request.set_timeout(timeout);
    network
        .client(addr)?
        .timeout_now(request)
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_string())
}
