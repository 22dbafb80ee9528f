//! How often leadership changed during a drill, and why: elections (terms in which a
//! coordinator was seen leading), terms spent, time without a leader, and the elections
//! that followed each kind of coordinator fault. A leader fault needs one election; a
//! follower kill, a restart of a follower, a healed partition or slow links need none.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::inject::TimelineEntry;
use super::sample::Observations;
use super::scenario::FaultKind;
use crate::stats::summary;

/// Faults of one kind and the elections won after them (before the next coordinator fault).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultElections {
    pub faults: u64,
    pub elections: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Leadership {
    /// Terms in which a coordinator was seen leading, after the first leader.
    pub elections: u64,
    /// Terms the cluster went through (last term seen − first term seen); more terms than
    /// elections are elections that failed (split votes) or that nobody was seen winning.
    pub terms: u64,
    /// Time no coordinator said it leads, from the first leader seen on.
    pub leaderless_ms: u64,
    /// Elections that followed each kind of coordinator fault.
    pub elections_by_fault: BTreeMap<String, FaultElections>,
    /// Commit latency of the probe writes during `delay-all` faults (`{n, p50, p99, …}` ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_all_commit_ms: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_all_commit_failures: Option<u64>,
}

/// Reads the leadership figures from the status samples and the injector's timeline
/// (`t0`: the timeline's zero).
pub fn leadership(o: &Observations, timeline: &[TimelineEntry], t0: Instant) -> Leadership {
    let mut first_led: BTreeMap<u64, Instant> = BTreeMap::new();
    for s in o.status.iter().filter(|s| s.is_leader()) {
        first_led.entry(s.term).or_insert(s.at);
    }
    let terms: BTreeSet<u64> = o.status.iter().map(|s| s.term).collect();
    let coordinator_faults: Vec<(Instant, &str)> = timeline
        .iter()
        .filter(|e| {
            FaultKind::ALL
                .iter()
                .any(|k| k.disturbs_coordinators() && k.name() == e.kind)
        })
        .map(|e| (t0 + Duration::from_millis(e.at_ms), e.kind.as_str()))
        .collect();
    let mut by_fault: BTreeMap<String, FaultElections> = BTreeMap::new();
    for (_, kind) in &coordinator_faults {
        by_fault.entry(kind.to_string()).or_default().faults += 1;
    }
    // Every election after the first leader goes to the last coordinator fault before it.
    for at in first_led.values().skip(1) {
        let cause = coordinator_faults
            .iter()
            .rev()
            .find(|(t, _)| t <= at)
            .map_or("none", |(_, k)| k);
        by_fault.entry(cause.to_string()).or_default().elections += 1;
    }
    Leadership {
        elections: first_led.len().saturating_sub(1) as u64,
        terms: match (terms.first(), terms.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        },
        leaderless_ms: o.leaderless.as_millis() as u64,
        elections_by_fault: by_fault,
        delay_all_commit_ms: None,
        delay_all_commit_failures: None,
    }
}

/// Adds the probe's commit latencies of the `delay-all` faults.
pub fn with_probe(mut l: Leadership, commit_ms: &[f64], failures: u64) -> Leadership {
    if !commit_ms.is_empty() || failures > 0 {
        l.delay_all_commit_ms = Some(summary(commit_ms));
        l.delay_all_commit_failures = Some(failures);
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::sample::StatusObs;

    fn led(at: Instant, node: u64, term: u64) -> StatusObs {
        StatusObs {
            at,
            node,
            term,
            leader_id: node,
        }
    }

    fn entry(at_ms: u64, kind: &str) -> TimelineEntry {
        TimelineEntry {
            at_ms,
            kind: kind.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn elections_go_to_the_coordinator_fault_before_them() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut o = Observations::default();
        o.status = vec![
            led(ms(0), 1, 2),
            // kill-leader at 1000 ms: node 2 leads term 3.
            led(ms(1500), 2, 3),
            // kill-follower at 3000 ms and upstream-500 at 4000: node 3 leads term 5,
            // after a failed term 4.
            led(ms(4500), 3, 5),
        ];
        o.leaderless = Duration::from_millis(700);
        let timeline = [
            entry(1000, "kill-leader"),
            entry(3000, "kill-follower"),
            entry(4000, "upstream-500"),
            entry(6000, "delay-all"),
        ];
        let l = leadership(&o, &timeline, t0);
        assert_eq!((l.elections, l.terms, l.leaderless_ms), (2, 3, 700));
        let get = |k: &str| l.elections_by_fault.get(k).cloned().unwrap_or_default();
        assert_eq!(
            get("kill-leader"),
            FaultElections {
                faults: 1,
                elections: 1
            }
        );
        assert_eq!(
            get("kill-follower"),
            FaultElections {
                faults: 1,
                elections: 1
            }
        );
        assert_eq!(
            get("delay-all"),
            FaultElections {
                faults: 1,
                elections: 0
            }
        );
        assert!(!l.elections_by_fault.contains_key("upstream-500"));
    }
}
