//! One function per command: each payload type applies itself to the state and names the
//! records it touched. Grouped by the object they change; lifecycle moves go through the
//! named transitions of `state::transition`.

pub mod access;
pub mod lease;
pub mod pipeline;
pub mod ratelimit;
pub mod run;
pub mod worker;

use super::command::{CommandResult, Key};
use super::model::{Run, State};

/// What applying one command produced: its result and the records to persist.
pub type Applied = (CommandResult, Vec<Key>);

pub(super) fn rejected(reason: impl Into<String>) -> Applied {
    (
        CommandResult::Rejected {
            reason: reason.into(),
        },
        vec![],
    )
}

pub(super) fn done(keys: Vec<Key>) -> Applied {
    (CommandResult::Done, keys)
}

/// The shard at `shard` of run `run_id`.
pub(super) fn shard_mut(state: &mut State, run_id: u64, shard: u32) -> Option<(&mut Run, usize)> {
    let run = state.runs.get_mut(&run_id)?;
    let idx = run.shard_pos(shard)?;
    Some((run, idx))
}

/// `n` shards keyed `k0`, `k1`, … (tests).
#[cfg(test)]
pub(crate) fn test_shards(n: u32) -> Vec<apitap_common::shard::ShardDef> {
    (0..n)
        .map(|i| apitap_common::shard::ShardDef {
            index: i,
            key: format!("k{i}"),
            vars: Default::default(),
        })
        .collect()
}

#[cfg(test)]
mod tests;
