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
    let term = raft.metrics().borrow().current_term;
    let json = serde_json::to_vec(&TimeoutNow { leader: me, term }).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(RaftMessage { json });
    request.set_timeout(within / 2);
    network
        .client(&addr)?
        .timeout_now(request)
        .await
        .map_err(|s| format!("node {target} did not take over: {}", s.message()))?;
    raft.wait(Some(within / 2))
        .metrics(
            |m| m.current_leader.is_some_and(|l| l != me),
            "another node leads",
        )
        .await
        .map_err(|e| format!("node {target} was asked to take over, but: {e}"))?;
    Ok(target)
}
