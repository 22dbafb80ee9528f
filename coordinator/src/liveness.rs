//! Leader memory: when each worker last heartbeated and when each lease runs out. Never
//! replicated; a new leader starts from scratch and gives every lease a full TTL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use apitap_proto::v1::BreakerInfo;

#[derive(Debug, Clone)]
pub struct WorkerSoft {
    pub last_seen: Instant,
    pub free_slots: u32,
    pub draining: bool,
    /// The process that holds the id (`RegisterRequest::instance`); empty for workers that
    /// send none.
    pub instance: String,
    /// The leases whose shard waits on an open circuit breaker, as the last heartbeat said.
    pub waits: HashMap<LeaseId, BreakerInfo>,
}

/// Longest host a breaker wait keeps (a DNS name of 253 bytes and a port).
pub const MAX_WAIT_HOST_BYTES: usize = 260;

/// The breaker waits of a heartbeat that are about leases it lists as held, bounded: at
/// most `MAX_BREAKER_WAITS`, hosts cut at [`MAX_WAIT_HOST_BYTES`], unknown states dropped.
pub fn breaker_waits(
    waits: &[apitap_proto::v1::BreakerWait],
    held: &[apitap_proto::v1::LeaseRef],
) -> HashMap<LeaseId, BreakerInfo> {
    use apitap_proto::limits::{truncate_utf8, MAX_BREAKER_WAITS};
    waits
        .iter()
        .take(MAX_BREAKER_WAITS)
        .filter_map(|w| {
            let l = w.lease.filter(|l| held.contains(l))?;
            let b = w.breaker.as_ref()?;
            if !matches!(b.state.as_str(), "open" | "half-open") {
                return None;
            }
            let wait = BreakerInfo {
                host: truncate_utf8(&b.host, MAX_WAIT_HOST_BYTES),
                state: b.state.clone(),
                until_ms: b.until_ms,
            };
            Some(((l.run_id, l.shard, l.fence), wait))
        })
        .collect()
}

/// Longest `instance` a worker may send (it sends 32 hex digits); the leader keeps one per
/// worker in memory.
pub const MAX_INSTANCE_BYTES: usize = 64;

/// Refuses an `instance` over [`MAX_INSTANCE_BYTES`].
pub fn check_instance(instance: &str) -> Result<(), String> {
    if instance.len() > MAX_INSTANCE_BYTES {
        return Err(format!(
            "instance is {} bytes; at most {MAX_INSTANCE_BYTES} (MAX_INSTANCE_BYTES)",
            instance.len()
        ));
    }
    Ok(())
}

/// (run, shard, fence) of a lease.
pub type LeaseId = (u64, u32, u64);

#[derive(Debug, Default)]
pub struct Liveness {
    /// The Raft term this soft state belongs to; a new term starts it over.
    pub term: Option<u64>,
    /// When this leader's term started here (the reference for workers it never heard).
    pub since: Option<Instant>,
    /// When the scheduler last looked for what to prune.
    pub retention_checked: Option<Instant>,
    pub workers: HashMap<String, WorkerSoft>,
    pub deadlines: HashMap<LeaseId, Instant>,
}

impl Liveness {
    /// Resets for a new leadership term.
    pub fn reset(&mut self, term: u64, now: Instant) {
        self.term = Some(term);
        self.since = Some(now);
        self.retention_checked = None;
        self.workers.clear();
        self.deadlines.clear();
    }

    /// Whether a retention check is due at `now` (at most once per `every`); marks it done.
    pub fn retention_due(&mut self, now: Instant, every: Duration) -> bool {
        let due = self
            .retention_checked
            .is_none_or(|t| now.saturating_duration_since(t) >= every);
        if due {
            self.retention_checked = Some(now);
        }
        due
    }

    pub fn heartbeat(
        &mut self,
        worker: &str,
        instance: &str,
        free_slots: u32,
        draining: bool,
        now: Instant,
    ) {
        self.workers.insert(
            worker.to_string(),
            WorkerSoft {
                last_seen: now,
                free_slots,
                draining,
                instance: instance.to_string(),
                waits: HashMap::new(),
            },
        );
    }

    /// The breaker waits `worker`'s latest heartbeat reported (see [`breaker_waits`]).
    pub fn set_waits(&mut self, worker: &str, waits: HashMap<LeaseId, BreakerInfo>) {
        if let Some(w) = self.workers.get_mut(worker) {
            w.waits = waits;
        }
    }

    /// The breaker wait of the lease (run, shard, fence) held by `worker`, if it reported one.
    pub fn wait_of(&self, worker: &str, lease: LeaseId) -> Option<&BreakerInfo> {
        self.workers.get(worker)?.waits.get(&lease)
    }

    /// Whether the process `instance` may speak as `worker`: no other process was heard under
    /// that id within `ttl`. `Err` carries how long ago the other one was heard.
    pub fn may_claim(
        &self,
        worker: &str,
        instance: &str,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        match self.workers.get(worker) {
            Some(w)
                if !w.instance.is_empty()
                    && w.instance != instance
                    && now.duration_since(w.last_seen) < ttl =>
            {
                Err(now.duration_since(w.last_seen))
            }
            _ => Ok(()),
        }
    }

    pub fn renew(&mut self, lease: LeaseId, ttl: Duration, now: Instant) {
        self.deadlines.insert(lease, now + ttl);
    }

    pub fn is_live(&self, worker: &str, ttl: Duration, now: Instant) -> bool {
        self.workers
            .get(worker)
            .is_some_and(|w| now.duration_since(w.last_seen) < ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_waits_are_kept_only_for_held_leases_and_bounded() {
        use apitap_proto::v1::{BreakerWait as Wire, LeaseRef};
        let held = [LeaseRef {
            run_id: 1,
            shard: 0,
            fence: 7,
        }];
        let wire = |fence, host: String, state: &str| Wire {
            lease: Some(LeaseRef {
                run_id: 1,
                shard: 0,
                fence,
            }),
            breaker: Some(BreakerInfo {
                host,
                state: state.into(),
                until_ms: 99,
            }),
        };
        let waits = breaker_waits(
            &[
                wire(7, "h".repeat(10_000), "open"),
                wire(8, "other:80".into(), "open"),
            ],
            &held,
        );
        assert_eq!(
            waits.len(),
            1,
            "a lease the heartbeat does not hold is ignored"
        );
        let w = &waits[&(1, 0, 7)];
        assert!(w.host.len() <= MAX_WAIT_HOST_BYTES);
        assert_eq!((w.state.as_str(), w.until_ms), ("open", 99));
        let odd = breaker_waits(&[wire(7, "h:80".into(), "<script>")], &held);
        assert!(odd.is_empty(), "an unknown state is dropped");
        let many: Vec<Wire> = (0..5000)
            .map(|_| wire(7, "h:80".into(), "half-open"))
            .collect();
        assert_eq!(breaker_waits(&many, &held).len(), 1);
    }

    #[test]
    fn a_worker_instance_is_bounded() {
        assert!(check_instance(&"a".repeat(32)).is_ok());
        assert!(check_instance("").is_ok());
        let e = check_instance(&"a".repeat(65)).expect_err("too long");
        assert!(e.contains("MAX_INSTANCE_BYTES"), "{e}");
    }
}
