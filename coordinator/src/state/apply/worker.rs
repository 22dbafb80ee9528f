//! Worker registration and retention.

use apitap_proto::limits::MAX_WORKER_SLOTS;
use serde::{Deserialize, Serialize};

use super::{done, rejected, Applied};
use crate::state::command::{CommandResult, Key};
use crate::state::model::{State, WorkerRecord};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterWorker {
    pub id: String,
    pub addr: String,
    pub slots: u32,
    pub now_ms: u64,
    /// The proposer's `--max-workers` (0: none, as in entries written before it).
    #[serde(default)]
    pub max_workers: u32,
}

impl RegisterWorker {
    pub fn apply(&self, state: &mut State) -> Applied {
        if self.slots == 0 || self.slots > MAX_WORKER_SLOTS {
            return rejected(format!(
                "worker {} asked for {} slots; a worker has 1..={MAX_WORKER_SLOTS} \
                 (MAX_WORKER_SLOTS)",
                self.id, self.slots
            ));
        }
        let n = state.workers.len();
        if self.max_workers > 0
            && !state.workers.contains_key(&self.id)
            && n >= self.max_workers as usize
        {
            return rejected(format!(
                "the cluster has {n} registered workers, its maximum (--max-workers); \
                 raise it or let silent workers be forgotten (--forget-workers-after)"
            ));
        }
        state.workers.insert(
            self.id.clone(),
            WorkerRecord {
                id: self.id.clone(),
                addr: self.addr.clone(),
                slots: self.slots,
                registered_at_ms: self.now_ms,
            },
        );
        done(vec![Key::Worker(self.id.clone())])
    }
}

/// Forget these workers (not heard from for long). One holding a lease is kept; a
/// forgotten worker that comes back registers again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForgetWorkers {
    pub ids: Vec<String>,
}

impl ForgetWorkers {
    pub fn apply(&self, state: &mut State) -> Applied {
        let holding = state.leases_by_worker();
        let mut keys = Vec::new();
        for id in &self.ids {
            if !holding.contains_key(id) && state.workers.remove(id).is_some() {
                keys.push(Key::Worker(id.clone()));
            }
        }
        let count = keys.len() as u32;
        (CommandResult::Removed { count }, keys)
    }
}
