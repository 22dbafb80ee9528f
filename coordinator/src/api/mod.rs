//! gRPC services of a coordinator node, and its admin HTTP server (`admin`).

pub mod access;
pub mod control;
mod convert;
pub mod exposition;
pub mod membership;
pub mod raft;
pub mod views;
pub mod worker;

use crate::state::command::Command;

/// `cmd` as made by `caller`: applied and recorded in the audit trail in one entry, and
/// logged as one structured line once committed.
pub fn audited(caller: &crate::auth::Caller, cmd: Command) -> Command {
    Command::Audited(crate::state::command::Audited {
        actor: caller.describe(),
        at_ms: apitap_common::time::now_ms(),
        cmd: Box::new(cmd),
    })
}
