//! `apitap-chaos drill` end to end: a short mixed drill passes on a cluster secured as in
//! production (mutual TLS, tokens, sealed secrets: the default), the zombie drill with
//! fencing switched off (test-only) is caught by the checker and exits non-zero (run with
//! `--insecure`, so that the plaintext mode stays covered too), and a drill of killed and
//! frozen (zombie) workers holds exactly once in every other sink (`--sink`), and at least
//! once with repeats only under the same message id in RabbitMQ.

use std::path::PathBuf;
use std::process::Command;

use apitap_chaos::testbed::bins;
use serde_json::Value;

/// A fresh folder for one drill's scenario, logs and data.
fn scratch(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("apitap-{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What `apitap-chaos drill` runs.
enum Scenario<'a> {
    /// A scenario file written from this YAML.
    Yaml(&'a str),
    /// A built-in scenario, by name.
    Builtin(&'a str),
}

/// Runs `apitap-chaos drill <scenario> --json [extra]` in a fresh folder ([`scratch`]), one
/// drill at a time; returns the folder, the exit code and the report.
fn drill(name: &str, scenario: Scenario, extra: &[&str]) -> anyhow::Result<(PathBuf, i32, Value)> {
    let _one = one_at_a_time();
    let dir = scratch(name)?;
    let scenario = match scenario {
        Scenario::Yaml(yaml) => {
            let file = dir.join(format!("{name}.yaml"));
            std::fs::write(&file, yaml)?;
            file.into_os_string()
        }
        Scenario::Builtin(builtin) => builtin.into(),
    };
    let out = Command::new(bins::path("apitap-chaos")?)
        .arg("drill")
        .arg(scenario)
        .arg("--json")
        .args(extra)
        .arg("--out")
        .arg(dir.join(name))
        .output()?;
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(stdout.trim()).map_err(|e| {
        anyhow::anyhow!(
            "exit {code}, no JSON report ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((dir, code, report))
}

/// Drills measure timing (failover, rate windows, back-off within 50 ms); running them one
/// at a time keeps them from loading the 2-core machine for each other.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn count(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn a_short_mixed_drill_keeps_every_invariant() -> anyhow::Result<()> {
    let (dir, code, report) = drill(
        "short-mixed",
        Scenario::Yaml(
            r#"
deadline: 3m
workload: { records: 24000, pipelines: 2, shards: 3, page_size: 50, source_latency: 150ms,
            coordinators: 3, workers: 3, slots: 4 }
faults:
  - { at: 2s, kind: kill-leader, restart_after: 2s }
  - { at: 3s, kind: upstream-500 }
  - { at: 4s, kind: pause-worker, target: 1, duration: 4s }
  - { at: 6s, kind: upstream-truncate }
  - { at: 7s, kind: partition-leader, duration: 2s }
  - { at: 8s, kind: kill-pg-backend }
  - { at: 10s, kind: kill-worker, target: 2, restart_after: 2s }
  - { at: 11s, kind: upstream-429, retry_after: 1s }
  - { at: 12s, kind: cpu-hog, duration: 2s }
  - { at: 13s, kind: delay-all, duration: 2s }
"#,
        ),
        &[],
    )?;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["tls"], true, "TLS is the default: {report:#}");
    assert_eq!(report["violations"], serde_json::json!([]), "{report:#}");
    assert_eq!(count(&report, "records_checked"), 24_000);
    assert_eq!(count(&report, "lost"), 0);
    assert_eq!(count(&report, "duplicated"), 0);
    assert_eq!(count(&report, "zombie_commits_accepted"), 0);
    assert_eq!(count(&report, "faults_total"), 10, "{report:#}");
    assert_eq!(report["faults_injected"].as_object().unwrap().len(), 10);
    assert!(
        report["leader_failover_ms"]["n"].as_u64() >= Some(1),
        "{report:#}"
    );
    // The leadership figures: the killed leader was replaced, so there was an election
    // after the kill; the slow links saw their fault and probe commits went through.
    let by_fault = &report["elections_by_fault"];
    assert!(
        by_fault["kill-leader"]["elections"].as_u64() >= Some(1),
        "{report:#}"
    );
    assert_eq!(by_fault["delay-all"]["faults"], 1, "{report:#}");
    assert!(
        report["delay_all_commit_ms"]["n"].as_u64() >= Some(1),
        "no commit went through while every coordinator link was slow: {report:#}"
    );
    assert!(
        count(&report, "terms") >= count(&report, "elections"),
        "{report:#}"
    );
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn the_zombie_drill_without_fencing_is_caught() -> anyhow::Result<()> {
    let (dir, code, report) = drill(
        "zombie-unfenced",
        Scenario::Yaml(
            r#"
deadline: 3m
workload: { records: 8000, shards: 2, coordinators: 1, workers: 2, unsafe_disable_fencing: true }
faults:
  - { at: 3s, kind: pause-worker, duration: 6s }
"#,
        ),
        &["--insecure"],
    )?;
    assert_eq!(code, 1, "a violation must fail the drill: {report:#}");
    assert_eq!(report["tls"], false, "{report:#}");
    assert_eq!(report["passed"], false);
    let violations = report["violations"].as_array().unwrap();
    assert!(!violations.is_empty());
    assert!(
        count(&report, "zombie_commits_accepted") > 0,
        "the zombie's commits went through: {report:#}"
    );
    assert!(
        count(&report, "duplicated") > 0
            || violations
                .iter()
                .any(|v| v.as_str().unwrap().contains("went back")),
        "the damage shows in the data or the checkpoints: {report:#}"
    );
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// Killed workers and a frozen one that wakes up as a zombie, into `sink`: every record once,
/// and the zombie's commits refused by the sink's own fence.
fn zombie_and_kill_drill(sink: &str) -> anyhow::Result<()> {
    let name = format!("zombie-kill-{sink}");
    let (dir, code, report) = drill(
        &name,
        Scenario::Yaml(
            r#"
deadline: 3m
workload: { records: 9000, pipelines: 1, shards: 3, page_size: 50, source_latency: 100ms,
            coordinators: 1, workers: 3, slots: 2 }
faults:
  - { at: 2s, kind: pause-worker, duration: 5s }
  - { at: 4s, kind: kill-worker, restart_after: 2s }
"#,
        ),
        &["--insecure", "--sink", sink],
    )?;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["sink"], sink, "{report:#}");
    assert_eq!(report["violations"], serde_json::json!([]), "{report:#}");
    assert_eq!(count(&report, "records_checked"), 9_000);
    let redelivered = count(&report, "redelivered");
    if sink != "rabbitmq" {
        assert_eq!(redelivered, 0, "{report:#}");
    }
    assert_eq!(
        report["tables"][0]["rows"].as_u64(),
        Some(9_000 + redelivered),
        "{report:#}"
    );
    assert_eq!(count(&report, "lost"), 0);
    assert_eq!(count(&report, "duplicated"), 0);
    assert_eq!(count(&report, "corrupt"), 0);
    assert!(
        count(&report, "zombie_commits_rejected") >= 1,
        "the frozen worker woke up and tried to commit: {report:#}"
    );
    assert_eq!(count(&report, "zombie_commits_accepted"), 0);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn killed_and_zombie_workers_keep_the_files_sink_exact() -> anyhow::Result<()> {
    zombie_and_kill_drill("files")
}

#[test]
fn killed_and_zombie_workers_keep_the_mysql_sink_exact() -> anyhow::Result<()> {
    zombie_and_kill_drill("mysql")
}

#[test]
fn killed_and_zombie_workers_keep_the_sqlite_sink_exact() -> anyhow::Result<()> {
    zombie_and_kill_drill("sqlite")
}

/// RabbitMQ is at least once: a record may come again, but only under its message id.
#[test]
fn killed_and_zombie_workers_lose_nothing_in_rabbitmq_and_repeat_only_message_ids(
) -> anyhow::Result<()> {
    zombie_and_kill_drill("rabbitmq")
}

#[test]
fn the_rate_limit_drill_holds_the_limit_and_reports_its_figures() -> anyhow::Result<()> {
    // Plaintext, to keep the figures comparable run to run: debug-build TLS on a loaded
    // 2-core machine costs the budget RPCs a share of the limit (side by side at load
    // average 14: 61–63 % used with TLS, 81–84 % without). The share used is a reported
    // figure, not asserted; the invariants (never over the limit, nothing during a
    // back-off) are. The drill itself runs with TLS by default, and the short mixed drill
    // above covers the TLS path.
    let (dir, code, report) = drill(
        "rate-limit",
        Scenario::Builtin("rate-limit"),
        &["--insecure"],
    )?;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["tls"], false, "{report:#}");
    assert!(
        report["rate_limit_max_window_overshoot_pct"].is_number(),
        "{report:#}"
    );
    assert!(
        report["rate_limit_utilization_pct"].is_number(),
        "{report:#}"
    );
    assert_eq!(report["rate_limit_early_requests"], 0, "{report:#}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
