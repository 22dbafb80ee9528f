//! The drill report: one JSON object (`--json`, and `report.json` in the output folder) and
//! a human summary. `violations` is empty exactly when every invariant held.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::check::TableCheck;
use super::inject::TimelineEntry;
use crate::proxy::ProxyStats;
use crate::testbed::SinkKind;

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: u64,
    pub pipeline: String,
    pub state: String,
    /// From submit to the end, as the coordinator stamped them.
    pub duration_ms: u64,
    pub shards: usize,
    /// Leases granted over the run (shard attempts).
    pub leases: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SampleCounts {
    pub status: u64,
    pub runs: u64,
    pub checkpoints: u64,
    /// Terms in which a coordinator was seen leading (elections won), and the last term.
    pub terms_led: u64,
    pub last_term: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub drill: String,
    pub seed: u64,
    /// The cluster ran with mutual TLS, tokens and sealed secrets (`false`: `--insecure`).
    pub tls: bool,
    /// The sink the workload loaded into, which the checker read back.
    pub sink: SinkKind,
    pub passed: bool,
    pub duration_ms: u64,
    pub records_checked: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// An at-least-once sink (RabbitMQ): messages delivered again under a message id already
    /// seen, which consumers drop by that id; counted, not a violation.
    pub redelivered: u64,
    /// Rows with ids outside the pipeline's range.
    pub unexpected: u64,
    /// Rows whose content differs from the source record.
    pub corrupt: u64,
    pub faults_injected: BTreeMap<String, u64>,
    pub faults_total: u64,
    /// `{n, mean, p50, p99, max}` in milliseconds.
    pub leader_failover_ms: Value,
    pub shard_reassign_ms: Value,
    pub zombie_commits_attempted: u64,
    pub zombie_commits_rejected: u64,
    pub zombie_commits_accepted: u64,
    pub tables: Vec<TableCheck>,
    pub runs: Vec<RunSummary>,
    pub samples: SampleCounts,
    /// Elections, terms, time without a leader, elections per coordinator fault.
    #[serde(flatten)]
    pub leadership: super::elections::Leadership,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyStats>,
    /// The state digest every coordinator agreed on.
    pub raft_digest: Option<String>,
    /// `rate-limit` drill: the worst 1-second window of the steady and leader-kill phases
    /// over the key's limit, in % (negative: below it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_max_window_overshoot_pct: Option<f64>,
    /// `rate-limit` drill: requests per second of the steady phase (first second left out)
    /// over the limit, in %.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_utilization_pct: Option<f64>,
    /// `rate-limit` drill: requests that arrived during a 429's `Retry-After` (must be 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_early_requests: Option<u64>,
    /// `rate-limit` drill: the figures of each phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Value>,
    pub timeline: Vec<TimelineEntry>,
    /// Things worth knowing that are not violations (a fault that hit nothing, ...).
    pub notes: Vec<String>,
    pub violations: Vec<String>,
    /// Logs, data and this report.
    pub out: String,
}

fn ms_line(v: &Value) -> String {
    if v["n"].as_u64().unwrap_or(0) == 0 {
        return "not measured".into();
    }
    format!(
        "n={} p50 {} ms, p99 {} ms, max {} ms",
        v["n"], v["p50"], v["p99"], v["max"]
    )
}

impl Report {
    /// The report of `scenario` before its drill adds what it measured: who ran, how long
    /// (from `started`), which faults were injected when; nothing checked, no sample, no
    /// violation. Each drill sets its figures on top with struct update syntax, then calls
    /// [`Report::finish`].
    pub fn base(
        scenario: &super::Scenario,
        tls: bool,
        sink: SinkKind,
        started: std::time::Instant,
        faults_injected: BTreeMap<String, u64>,
        timeline: Vec<TimelineEntry>,
        out: &std::path::Path,
    ) -> Report {
        Report {
            drill: scenario.name.clone(),
            seed: scenario.seed,
            tls,
            sink,
            passed: false,
            duration_ms: started.elapsed().as_millis() as u64,
            records_checked: 0,
            lost: 0,
            duplicated: 0,
            redelivered: 0,
            unexpected: 0,
            corrupt: 0,
            faults_total: faults_injected.values().sum(),
            faults_injected,
            leader_failover_ms: crate::stats::summary(&[]),
            shard_reassign_ms: crate::stats::summary(&[]),
            zombie_commits_attempted: 0,
            zombie_commits_rejected: 0,
            zombie_commits_accepted: 0,
            tables: Vec::new(),
            runs: Vec::new(),
            samples: SampleCounts::default(),
            leadership: Default::default(),
            proxy: None,
            raft_digest: None,
            rate_limit_max_window_overshoot_pct: None,
            rate_limit_utilization_pct: None,
            rate_limit_early_requests: None,
            rate_limit: None,
            timeline,
            notes: Vec::new(),
            violations: Vec::new(),
            out: out.display().to_string(),
        }
    }

    /// The drill passed exactly when it found no violation; the report is saved to its
    /// output folder.
    pub fn finish(mut self) -> anyhow::Result<Report> {
        self.passed = self.violations.is_empty();
        self.save(std::path::Path::new(&self.out))?;
        Ok(self)
    }

    /// Writes the report as `report.json` into the drill's output folder `out`.
    pub fn save(&self, out: &std::path::Path) -> anyhow::Result<()> {
        std::fs::write(out.join("report.json"), serde_json::to_string_pretty(self)?)?;
        Ok(())
    }

    /// The summary printed without `--json`.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(
            s,
            "drill {} (seed {}): {verdict} in {:.1} s",
            self.drill,
            self.seed,
            self.duration_ms as f64 / 1000.0
        );
        let _ = writeln!(s, "  cluster          {}", super::security(self.tls));
        let _ = writeln!(s, "  sink             {}", self.sink.name());
        let _ = writeln!(
            s,
            "  records checked  {}  (lost {}, duplicated {}, unexpected {}, corrupt {}, redelivered under the same message id {})",
            self.records_checked, self.lost, self.duplicated, self.unexpected, self.corrupt, self.redelivered
        );
        let kinds: Vec<String> = self
            .faults_injected
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "  faults injected  {} of {} kinds: {}",
            self.faults_total,
            self.faults_injected.len(),
            kinds.join(", ")
        );
        let _ = writeln!(
            s,
            "  leader failover  {}",
            ms_line(&self.leader_failover_ms)
        );
        let l = &self.leadership;
        let by_fault: Vec<String> = l
            .elections_by_fault
            .iter()
            .map(|(k, f)| format!("{k} {}/{}", f.elections, f.faults))
            .collect();
        let _ = writeln!(
            s,
            "  elections        {} in {} terms, {} ms without a leader; elections/faults: {}",
            l.elections,
            l.terms,
            l.leaderless_ms,
            if by_fault.is_empty() {
                "no coordinator fault".into()
            } else {
                by_fault.join(", ")
            }
        );
        if let Some(c) = &l.delay_all_commit_ms {
            let _ = writeln!(
                s,
                "  delay-all        commits {} ({} failed)",
                ms_line(c),
                l.delay_all_commit_failures.unwrap_or(0)
            );
        }
        let _ = writeln!(s, "  shard reassign   {}", ms_line(&self.shard_reassign_ms));
        let _ = writeln!(
            s,
            "  zombie commits   attempted {}, rejected {}, accepted {}",
            self.zombie_commits_attempted,
            self.zombie_commits_rejected,
            self.zombie_commits_accepted
        );
        for r in &self.runs {
            let _ = writeln!(
                s,
                "  run {:<3} {:<10} {} in {:.1} s ({} shards, {} leases)",
                r.run_id,
                r.pipeline,
                r.state,
                r.duration_ms as f64 / 1000.0,
                r.shards,
                r.leases
            );
        }
        let _ = writeln!(
            s,
            "  raft state       {}",
            match &self.raft_digest {
                Some(d) => format!("identical on every coordinator (digest {d})"),
                None => "differs (see violations)".into(),
            }
        );
        let _ = writeln!(
            s,
            "  sampled          {} status, {} run and {} checkpoint samples; leaders seen in {} terms (last term {})",
            self.samples.status,
            self.samples.runs,
            self.samples.checkpoints,
            self.samples.terms_led,
            self.samples.last_term
        );
        if let (Some(o), Some(u), Some(e)) = (
            self.rate_limit_max_window_overshoot_pct,
            self.rate_limit_utilization_pct,
            self.rate_limit_early_requests,
        ) {
            let _ = writeln!(
                s,
                "  rate limit       worst 1 s window {o}% over the limit, utilisation {u}%, {e} early requests after a 429"
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        if self.violations.is_empty() {
            let _ = writeln!(s, "  violations       none");
        } else {
            let _ = writeln!(s, "  violations       {}:", self.violations.len());
            for v in &self.violations {
                let _ = writeln!(s, "    - {v}");
            }
        }
        let _ = writeln!(s, "  logs and report  {}", self.out);
        s
    }
}
