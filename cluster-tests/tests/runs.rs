//! Run lifecycle on real processes: schedules with incremental watermarks, cancel and
//! retry, dead letters, and a coordinator leader dying mid-run.

use std::time::Duration;

use apitap_chaos::mock_api::{Fault, FaultSpec};
use apitap_chaos::testbed::{wait, TempPostgres, TestCluster};
use apitap_cluster_tests::expect;
use sqlx::Row;

fn total_records(run: &serde_json::Value) -> u64 {
    run["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["records"].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_incremental_runs_load_only_new_records() -> anyhow::Result<()> {
    let pg = TempPostgres::start()?;
    let cluster = TestCluster::builder()
        .secret("WAREHOUSE_URL", &pg.url())
        .records(500)
        .start()
        .await?;
    let yaml = r#"apiVersion: apitap/v1
kind: Pipeline
metadata: { name: incremental }
spec:
  schedule: { every: 2s }
  incremental: { cursor_field: id, initial: "0" }
  source:
    http:
      url: "${MOCK_API_URL}/v1/cursor?since_id={{ watermark }}"
      records: $.data
      pagination: { kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: 100 }
  sink:
    postgres: { url: "${WAREHOUSE_URL}", table: incremental_users }
"#;
    let path = cluster.out_path("incremental.yaml");
    std::fs::write(&path, yaml)?;
    cluster.ctl_ok(&["submit", &path.display().to_string()])?;
    let runs = |cluster: &TestCluster| -> Option<Vec<serde_json::Value>> {
        let v = cluster
            .ctl_json(&["get", "runs", "--pipeline", "incremental"])
            .ok()?;
        let mut runs: Vec<_> = v.as_array()?.clone();
        runs.reverse();
        Some(runs)
    };
    let first = wait::until("the first scheduled run", Duration::from_secs(60), || {
        runs(&cluster)?
            .into_iter()
            .find(|r| r["state"] == "succeeded")
    })?;
    assert_eq!(total_records(&first), 500);
    cluster.mock.state().dataset().grow(120);
    let later = wait::until(
        "a run that loads the new records",
        Duration::from_secs(60),
        || {
            runs(&cluster)?.into_iter().find(|r| {
                r["state"] == "succeeded" && total_records(r) > 0 && r["run_id"] != first["run_id"]
            })
        },
    )?;
    assert_eq!(total_records(&later), 120, "{later:#}");
    // The schedule keeps firing; runs after it find nothing new.
    let empty = wait::until("a run with nothing new", Duration::from_secs(60), || {
        runs(&cluster)?
            .into_iter()
            .find(|r| r["state"] == "succeeded" && r["run_id"].as_u64() > later["run_id"].as_u64())
    })?;
    assert_eq!(total_records(&empty), 0, "{empty:#}");
    let pool = sqlx::PgPool::connect(&pg.url()).await?;
    expect::exact_dataset(&pool, "incremental_users", 620).await
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_then_retry_resumes_and_loads_exactly() -> anyhow::Result<()> {
    let pg = TempPostgres::start()?;
    let cluster = TestCluster::builder()
        .secret("WAREHOUSE_URL", &pg.url())
        .records(3000)
        .workers(2)
        .start()
        .await?;
    cluster.mock.state().push_fault(FaultSpec {
        fault: Fault::Latency { ms: 100 },
        count: 100_000,
    });
    let yaml = r#"apiVersion: apitap/v1
kind: Pipeline
metadata: { name: cancel-me }
spec:
  shards: { param: ids, range: { start: 1, end: 3000, count: 3 } }
  source:
    http:
      url: "${MOCK_API_URL}/v1/page_number?from_id={{ shard.start }}&to_id={{ shard.end }}"
      records: $.data
      pagination: { kind: page_number, size: 50 }
  sink:
    postgres: { url: "${WAREHOUSE_URL}", table: cancel_users }
"#;
    let run = cluster.submit("cancel", yaml)?;
    wait::until("progress", Duration::from_secs(60), || {
        (total_records(&cluster.run_info(run).ok()?) > 0).then_some(())
    })?;
    let cancelled = cluster.ctl_json(&["run", "cancel", &run.to_string()])?;
    assert_eq!(cancelled["state"], "cancelled");
    let out = cluster.ctl(&["run", "cancel", &run.to_string()])?;
    assert!(!out.status.success(), "cancelling twice must be refused");

    let retried = cluster.ctl_json(&["run", "retry", &run.to_string()])?;
    assert_eq!(retried["state"], "pending", "{retried:#}");
    let info = cluster.wait_for_run(run, Duration::from_secs(120))?;
    assert_eq!(info["state"], "succeeded", "{info:#}");
    let pool = sqlx::PgPool::connect(&pg.url()).await?;
    expect::exact_dataset(&pool, "cancel_users", 3000).await
}

#[tokio::test(flavor = "multi_thread")]
async fn records_the_sql_cannot_transform_go_to_the_dead_letter_table() -> anyhow::Result<()> {
    let pg = TempPostgres::start()?;
    let cluster = TestCluster::builder()
        .secret("WAREHOUSE_URL", &pg.url())
        .records(300)
        .start()
        .await?;
    let yaml = r#"apiVersion: apitap/v1
kind: Pipeline
metadata: { name: bad-sql }
spec:
  source:
    http:
      url: "${MOCK_API_URL}/v1/limit_offset"
      records: $.data
      pagination: { kind: limit_offset, size: 100 }
  transform:
    sql: SELECT id, no_such_column FROM source
  sink:
    postgres: { url: "${WAREHOUSE_URL}", table: never_loaded }
"#;
    let run = cluster.submit("bad-sql", yaml)?;
    let info = cluster.wait_for_run(run, Duration::from_secs(60))?;
    assert_eq!(info["state"], "failed", "{info:#}");
    assert!(
        info["error"].as_str().unwrap().contains("no_such_column"),
        "{info:#}"
    );
    let pool = sqlx::PgPool::connect(&pg.url()).await?;
    let rows = sqlx::query("SELECT record->>'id', error FROM apitap_dead_letters WHERE pipeline = 'bad-sql' ORDER BY ordinal")
        .fetch_all(&pool)
        .await?;
    assert_eq!(
        rows.len(),
        100,
        "the first page's records are dead-lettered once"
    );
    assert_eq!(rows[0].get::<String, _>(0), "1");
    assert!(rows[0].get::<String, _>(1).contains("no_such_column"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_coordinator_leader_mid_run_keeps_data_exact() -> anyhow::Result<()> {
    let pg = TempPostgres::start()?;
    let mut cluster = TestCluster::builder()
        .secret("WAREHOUSE_URL", &pg.url())
        .coordinators(3)
        .workers(2)
        .records(4000)
        .start()
        .await?;
    cluster.mock.state().push_fault(FaultSpec {
        fault: Fault::Latency { ms: 100 },
        count: 100_000,
    });
    let yaml = r#"apiVersion: apitap/v1
kind: Pipeline
metadata: { name: leader-kill }
spec:
  shards: { param: ids, range: { start: 1, end: 4000, count: 4 } }
  source:
    http:
      url: "${MOCK_API_URL}/v1/cursor?from_id={{ shard.start }}&to_id={{ shard.end }}"
      records: $.data
      pagination: { kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: 50 }
  sink:
    postgres: { url: "${WAREHOUSE_URL}", table: leader_kill }
"#;
    let run = cluster.submit("leader-kill", yaml)?;
    wait::until("progress", Duration::from_secs(60), || {
        (total_records(&cluster.run_info(run).ok()?) > 0).then_some(())
    })?;
    let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
    let idx = cluster
        .coordinators
        .iter()
        .position(|c| c.id == leader)
        .unwrap();
    cluster.coordinator_proc(idx).expect("running").kill();
    let info = cluster.wait_for_run(run, Duration::from_secs(180))?;
    assert_eq!(info["state"], "succeeded", "{info:#}");
    let pool = sqlx::PgPool::connect(&pg.url()).await?;
    expect::exact_dataset(&pool, "leader_kill", 4000).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cron_schedule_fires_at_the_next_minute() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().records(50).start().await?;
    let db = cluster.out_path("cron.db");
    let yaml = format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: every-minute }}
spec:
  schedule: {{ cron: "* * * * *" }}
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/all"
  sink:
    sqlite: {{ path: "{}", table: users }}
"#,
        db.display()
    );
    let path = cluster.out_path("cron.yaml");
    std::fs::write(&path, yaml)?;
    let out = cluster.ctl_json(&["submit", &path.display().to_string()])?;
    assert_eq!(
        out["run_id"].as_u64(),
        Some(0),
        "a scheduled pipeline does not run on submit"
    );
    let listed = cluster.ctl_json(&["get", "pipelines"])?;
    assert_eq!(listed[0]["schedule"], "cron * * * * *");
    let run = wait::until("the cron schedule to fire", Duration::from_secs(75), || {
        let runs = cluster.ctl_json(&["get", "runs"]).ok()?;
        runs.as_array()?
            .iter()
            .find(|r| r["state"] == "succeeded")
            .cloned()
    })?;
    assert_eq!(total_records(&run), 50);
    let started = run["created_at_ms"].as_u64().unwrap();
    assert!(
        started % 60_000 < 5_000,
        "fired {} ms after a minute boundary",
        started % 60_000
    );
    Ok(())
}
