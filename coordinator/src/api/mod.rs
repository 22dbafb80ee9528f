//! gRPC services of a coordinator node, and its admin HTTP server (`admin`).

pub mod access;
pub mod admin;
pub mod control;
mod convert;
pub mod membership;
pub mod raft;
pub mod worker;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::node::Node;
use crate::state::command::{Command, CommandResult};

/// Proposes `cmd` through Raft on this node, which must be the leader.
pub async fn propose(node: &Arc<Node>, cmd: Command) -> Result<CommandResult> {
    let audit = match &cmd {
        Command::Audited(a) => Some((a.actor.clone(), a.cmd.describe())),
        _ => None,
    };
    let result = match node.raft.client_write(cmd).await {
        Ok(resp) => Ok(resp.data),
        Err(e) => Err(map_write_error(node, e)),
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

/// `cmd` as made by `caller`: applied and recorded in the audit trail in one entry, and
/// logged as one structured line once committed.
pub fn audited(caller: &crate::auth::Caller, cmd: Command) -> Command {
    Command::Audited(crate::state::command::Audited {
        actor: caller.describe(),
        at_ms: apitap_common::time::now_ms(),
        cmd: Box::new(cmd),
    })
}

/// [`propose`] under `span`, which then records the outcome (run id, fence, or the error).
pub async fn propose_traced(
    node: &Arc<Node>,
    cmd: Command,
    span: &tracing::Span,
) -> Result<CommandResult> {
    use tracing::Instrument;
    let result = propose(node, cmd)
        .instrument(span.clone())
        .await
        .inspect_err(|e| crate::spans::record_failure(span, e))?;
    crate::spans::record_result(span, &result);
    Ok(result)
}

/// openraft's write errors in the coordinator's words ([`Error`] maps them to statuses).
pub fn map_write_error(
    node: &Arc<Node>,
    e: openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, openraft::BasicNode>>,
) -> Error {
    use openraft::error::{ClientWriteError, RaftError};
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Error::NotLeader {
            leader_addr: f.leader_node.map(|n| n.addr).or_else(|| node.leader_addr()),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => e.into(),
        RaftError::Fatal(f) => Error::Raft(f.to_string()),
    }
}

/// Waits until this node may serve a current read (it is the leader and knows it).
pub async fn linearizable(node: &Arc<Node>) -> Result<()> {
    use openraft::error::{CheckIsLeaderError, RaftError};
    match node.raft.ensure_linearizable().await {
        Ok(_) => Ok(()),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => Err(Error::NotLeader {
            leader_addr: f.leader_node.map(|n| n.addr).or_else(|| node.leader_addr()),
        }),
        Err(e) => Err(Error::Raft(e.to_string())),
    }
}
