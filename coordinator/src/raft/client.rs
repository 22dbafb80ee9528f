//! The Raft client calls of a node: proposing a command, waiting for a linearizable read,
//! and finding the leader. Every part of the coordinator writes and reads through here
//! (`Node::propose`, `Node::linearizable`), so openraft's errors are mapped in one place.

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use super::Raft;
use crate::error::{Error, Result};
use crate::state::command::{Command, CommandResult};

/// The leader's advertised address, as this node's Raft metrics know it.
pub fn leader_addr(raft: &Raft) -> Option<String> {
    let m = raft.metrics().borrow().clone();
    let leader = m.current_leader?;
    m.membership_config
        .membership()
        .get_node(&leader)
        .map(|n| n.addr.clone())
}

/// Proposes `cmd`; this node must be the leader. An audited command is also logged as one
/// structured line (target `apitap::audit`) with its outcome.
pub async fn propose(raft: &Raft, cmd: Command) -> Result<CommandResult> {
    let audit = match &cmd {
        Command::Audited(a) => Some((a.actor.clone(), a.cmd.describe())),
        _ => None,
    };
    let result = match raft.client_write(cmd).await {
        Ok(resp) => Ok(resp.data),
        Err(e) => Err(write_error(raft, e)),
    };
    if let Some((actor, (action, object))) = audit {
        let outcome = match &result {
            Ok(CommandResult::Rejected { reason }) => format!("rejected: {reason}"),
            Ok(_) => "ok".into(),
            Err(e) => format!("not committed: {e}"),
        };
        tracing::info!(target: "apitap::audit", %actor, %action, %object, %outcome, "audit");
    }
    result
}

/// openraft's write errors in the coordinator's words ([`Error`] maps them to statuses).
pub fn write_error(
    raft: &Raft,
    e: RaftError<u64, ClientWriteError<u64, openraft::BasicNode>>,
) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Error::NotLeader {
            leader_addr: f.leader_node.map(|n| n.addr).or_else(|| leader_addr(raft)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => e.into(),
        RaftError::Fatal(f) => Error::Raft(f.to_string()),
    }
}

/// Waits until this node may serve a current read (it is the leader and knows it).
pub async fn linearizable(raft: &Raft) -> Result<()> {
    match raft.ensure_linearizable().await {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => Err(Error::NotLeader {
            leader_addr: f.leader_node.map(|n| n.addr).or_else(|| leader_addr(raft)),
        }),
        Err(e) => Err(Error::Raft(e.to_string())),
    }
}
