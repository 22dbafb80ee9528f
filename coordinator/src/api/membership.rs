//! `cluster init|add|remove` on the leader. Each asks for an end state ("node 2 at ADDR is a
//! voter") and does only what is missing, so repeating it (a bootstrap script, a Kubernetes
//! Job that restarts) is safe. Each returns, in words, what it changed.
//!
//! Voters are added and removed with openraft's `AddVoterIds` / `RemoveVoters`, which the
//! Raft core applies to the membership as it is then, so two changes asked for at once never
//! undo each other. A change asked for while an earlier one is not committed fails with
//! [`Error::MembershipBusy`]; apitapctl waits and retries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};

use crate::error::{Error, Result};
use crate::node::Node;

/// How long `cluster add` waits for a new learner to catch up with the leader before it
/// answers that the node stays a learner for now. Below the 10 s request timeout of
/// apitapctl's channel, so that the user reads this answer rather than a timeout.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(8);

fn leader_only(node: &Node) -> Result<()> {
    if node.is_leader() {
        Ok(())
    } else {
        Err(Error::NotLeader {
            leader_addr: node.leader_addr(),
        })
    }
}

/// The membership this node knows now: every member's address and the voters.
fn members(node: &Node) -> (BTreeMap<u64, String>, BTreeSet<u64>) {
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let nodes = membership
        .nodes()
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect();
    (nodes, membership.voter_ids().collect())
}

/// Makes this (uninitialized) node the only member of a new cluster.
pub async fn init(node: &Arc<Node>) -> Result<&'static str> {
    let initialized = node
        .raft
        .is_initialized()
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
    if initialized {
        return Err(Error::MembershipConflict(
            "the cluster is already initialized; add nodes with `apitapctl cluster add`".into(),
        ));
    }
    let members = BTreeMap::from([(
        node.id,
        BasicNode {
            addr: node.addr.clone(),
        },
    )]);
    node.raft.initialize(members).await.map_err(|e| match e {
        openraft::error::RaftError::APIError(e) => Error::from(e),
        openraft::error::RaftError::Fatal(f) => Error::Raft(f.to_string()),
    })?;
    Ok("initialized a one-member cluster")
}

/// Makes node `id` at `addr` a voter (or only a learner): a learner first, which must catch
/// up with the leader within [`CATCH_UP_WAIT`], then a voter.
pub async fn add(node: &Arc<Node>, id: u64, addr: &str, learner_only: bool) -> Result<String> {
    leader_only(node)?;
    if addr.trim().is_empty() {
        return Err(Error::InvalidInput(
            "the node's address is empty; give the HOST:PORT its peers dial".into(),
        ));
    }
    let (nodes, voters) = members(node);
    match nodes.get(&id) {
        Some(known) if known != addr => {
            return Err(Error::MembershipConflict(format!(
                "node {id} is already a member at {known}, not {addr}. A member's address \
                 cannot change: to move it, `apitapctl cluster remove {id}`, wipe its data \
                 directory, start it at {addr} and add it again; or add the new node under \
                 another id"
            )))
        }
        Some(_) if voters.contains(&id) => return Ok("already a voter".into()),
        Some(_) if learner_only => return Ok("already a learner".into()),
        Some(_) => {}
        None => {
            let learner = BasicNode { addr: addr.into() };
            node.raft
                .add_learner(id, learner, false)
                .await
                .map_err(|e| crate::raft::client::write_error(&node.raft, e))?;
            if learner_only {
                return Ok("added as a learner".into());
            }
        }
    }
    wait_caught_up(node, id, addr).await?;
    node.raft
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        .await
        .map_err(|e| crate::raft::client::write_error(&node.raft, e))?;
    Ok(if nodes.contains_key(&id) {
        "made a voter (it was a learner)".into()
    } else {
        "added as a voter".into()
    })
}

/// Waits until the leader has replicated its whole log, as it is now, to learner `id`.
/// If this node stops leading meanwhile (an election after a pause or a partition), it
/// answers "not the leader" at once: apitapctl then asks the new leader, which finds the
/// learner and finishes the add, instead of waiting here for a replication that stopped.
async fn wait_caught_up(node: &Arc<Node>, id: u64, addr: &str) -> Result<()> {
    let target = node.raft.metrics().borrow().last_log_index.unwrap_or(0);
    let me = node.id;
    let waited = node
        .raft
        .wait(Some(CATCH_UP_WAIT))
        .metrics(
            |m| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten());
                m.current_leader != Some(me) || matched.is_some_and(|l| l.index >= target)
            },
            "the new learner catches up, or this node stops leading",
        )
        .await;
    leader_only(node)?;
    waited.map(|_| ()).map_err(|_| {
        Error::MembershipConflict(format!(
            "node {id} is a learner now, but it has not caught up with the leader within \
             {CATCH_UP_WAIT:?}: is it running, and can the leader reach it at {addr}? It \
             stays a learner; run `apitapctl cluster add {id} {addr}` again once it is up"
        ))
    })
}

/// Removes node `id` from the cluster (a voter or a learner).
pub async fn remove(node: &Arc<Node>, id: u64) -> Result<String> {
    leader_only(node)?;
    let (nodes, voters) = members(node);
    let change = if voters.contains(&id) {
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else if nodes.contains_key(&id) {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    } else {
        let ids: Vec<String> = nodes.keys().map(u64::to_string).collect();
        return Ok(format!(
            "not a member (members: {}); nothing to remove",
            ids.join(", ")
        ));
    };
    node.raft
        .change_membership(change, false)
        .await
        .map_err(|e| crate::raft::client::write_error(&node.raft, e))?;
    Ok("removed".into())
}
