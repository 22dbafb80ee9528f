//! What the workers' JSON logs tell about leases and zombies:
//!
//! - `lease claimed` (run_id, shard, fence): which worker claimed which fence in the sink;
//! - `commit rejected` (run_id, shard, fence, stored_fence): a stale lease tried to commit
//!   and the sink's fence refused it: a zombie commit attempted and rejected;
//! - the fencing-disabled warning (fence, stored_fence), only logged when a drill switched
//!   fencing off: a stale lease's commit was accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// The message the worker logs when `APITAP_FAULT_DISABLE_FENCING` let a commit through.
pub const FENCING_DISABLED_MSG: &str = "fencing disabled";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogFindings {
    /// (run, shard, fence) → the workers that claimed it.
    pub claims: BTreeMap<(u64, u64, u64), BTreeSet<String>>,
    /// Commits of stale leases the sink refused: (worker, run, shard, fence, stored fence).
    pub rejected: Vec<(String, u64, u64, u64, u64)>,
    /// Commits of stale leases the sink accepted (fencing off): (worker, fence, stored fence).
    pub accepted: Vec<(String, u64, u64)>,
}

fn num(fields: &Value, key: &str) -> u64 {
    match &fields[key] {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

impl LogFindings {
    /// Reads the log of `worker` (JSON lines; other lines are skipped).
    pub fn add_log(&mut self, worker: &str, path: &Path) {
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        for line in text.lines() {
            self.add_line(worker, line);
        }
    }

    pub fn add_line(&mut self, worker: &str, line: &str) {
        if !line.starts_with('{') {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let fields = &v["fields"];
        let Some(msg) = fields["message"].as_str() else {
            return;
        };
        let (run, shard, fence) = (
            num(fields, "run_id"),
            num(fields, "shard"),
            num(fields, "fence"),
        );
        if msg.starts_with("lease claimed") {
            self.claims
                .entry((run, shard, fence))
                .or_default()
                .insert(worker.to_string());
        } else if msg.starts_with("commit rejected") {
            self.rejected.push((
                worker.to_string(),
                run,
                shard,
                fence,
                num(fields, "stored_fence"),
            ));
        } else if msg.contains(FENCING_DISABLED_MSG) {
            let stored = num(fields, "stored_fence");
            // The stale lease is the one below the stored fence; the current holder that
            // finds a fence a zombie wrote back (lower) is not a zombie.
            if fence < stored {
                self.accepted.push((worker.to_string(), fence, stored));
            }
        }
    }

    /// (run, shard, fence) claimed by more than one worker.
    pub fn double_claims(&self) -> Vec<String> {
        self.claims
            .iter()
            .filter(|(_, w)| w.len() > 1)
            .map(|((run, shard, fence), w)| {
                format!(
                    "run {run} shard {shard} fence {fence} claimed by {}",
                    w.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_claims_rejections_and_accepted_stale_commits() {
        let mut f = LogFindings::default();
        f.add_line("w1", r#"{"event":"listening"}"#);
        f.add_line("w1", "not json");
        f.add_line("w1", r#"{"level":"INFO","fields":{"message":"lease claimed","run_id":1,"shard":2,"fence":30,"pages":0,"records":0}}"#);
        f.add_line("w2", r#"{"level":"INFO","fields":{"message":"lease claimed","run_id":1,"shard":2,"fence":30,"pages":0,"records":0}}"#);
        f.add_line("w1", r#"{"level":"WARN","fields":{"message":"commit rejected: a newer lease owns the shard; dropping this lease","run_id":1,"shard":2,"fence":30,"stored_fence":41}}"#);
        f.add_line("w1", r#"{"level":"WARN","fields":{"message":"FAULT INJECTION: fencing disabled: accepting a commit whose fence differs from the sink's","fence":30,"stored_fence":41}}"#);
        f.add_line("w2", r#"{"level":"WARN","fields":{"message":"FAULT INJECTION: fencing disabled: accepting a commit whose fence differs from the sink's","fence":41,"stored_fence":30}}"#);
        assert_eq!(f.rejected, vec![("w1".into(), 1, 2, 30, 41)]);
        assert_eq!(f.accepted, vec![("w1".into(), 30, 41)]);
        assert_eq!(f.double_claims().len(), 1);
    }
}
