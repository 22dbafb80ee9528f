//! Run lifecycle on real processes: schedules with incremental watermarks, cancel and
//! retry, dead letters, and a coordinator leader dying mid-run.

use apitap_cluster_tests::expect::total_records;
use std::time::Duration;

use apitap_chaos::testbed::{wait, TestCluster};
use apitap_cluster_tests::expect;
use apitap_cluster_tests::fixture::{self, kill_leader, slow_source, wait_for_progress};
use apitap_cluster_tests::pipelines::{self, postgres};
use sqlx::Row;

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_incremental_runs_load_only_new_records() -> anyhow::Result<()> {
    let (pg, cluster) = fixture::warehouse_cluster(1, 1, 500).await?;
    let yaml = pipelines::doc(
        "incremental",
        r#"  schedule: { every: 2s }
  incremental: { cursor_field: id, initial: "0" }
  source:
    http:
      url: "${MOCK_API_URL}/v1/cursor?since_id={{ watermark }}"
      records: $.data
      pagination: { kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: 100 }
  sink:
    postgres: { url: "${WAREHOUSE_URL}", table: incremental_users }
"#,
    );
    cluster.submit("incremental", &yaml)?;
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
    expect::exact_dataset_at(&pg.url(), "incremental_users", 620).await
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_then_retry_resumes_and_loads_exactly() -> anyhow::Result<()> {
    let (pg, cluster) = fixture::warehouse_cluster(1, 2, 3000).await?;
    slow_source(&cluster, 100);
    let paging = pipelines::page_number(50);
    let yaml =
        pipelines::sharded_paged("cancel-me", 1..=3000, 3, &paging, &postgres("cancel_users"));
    let run = cluster.submit("cancel", &yaml)?;
    wait_for_progress(&cluster, run)?;
    let cancelled = cluster.ctl_json(&["run", "cancel", &run.to_string()])?;
    assert_eq!(cancelled["state"], "cancelled");
    let out = cluster.ctl(&["run", "cancel", &run.to_string()])?;
    assert!(!out.status.success(), "cancelling twice must be refused");

    let retried = cluster.ctl_json(&["run", "retry", &run.to_string()])?;
    // Back to work: pending, or already running if the scheduler granted a shard before
    // apitapctl read the run back.
    assert!(
        retried["state"] == "pending" || retried["state"] == "running",
        "{retried:#}"
    );
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(120))?;
    expect::exact_dataset_at(&pg.url(), "cancel_users", 3000).await
}

#[tokio::test(flavor = "multi_thread")]
async fn records_the_sql_cannot_transform_go_to_the_dead_letter_table() -> anyhow::Result<()> {
    let (pg, cluster) = fixture::warehouse_cluster(1, 1, 300).await?;
    let yaml = pipelines::doc(
        "bad-sql",
        r#"  source:
    http:
      url: "${MOCK_API_URL}/v1/limit_offset"
      records: $.data
      pagination: { kind: limit_offset, size: 100 }
  transform:
    sql: SELECT id, no_such_column FROM source
  sink:
    postgres: { url: "${WAREHOUSE_URL}", table: never_loaded }
"#,
    );
    let run = cluster.submit("bad-sql", &yaml)?;
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
    let (pg, mut cluster) = fixture::warehouse_cluster(3, 2, 4000).await?;
    slow_source(&cluster, 100);
    let paging = pipelines::cursor(50);
    let yaml = pipelines::sharded_paged(
        "leader-kill",
        1..=4000,
        4,
        &paging,
        &postgres("leader_kill"),
    );
    let run = cluster.submit("leader-kill", &yaml)?;
    wait_for_progress(&cluster, run)?;
    kill_leader(&mut cluster)?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    expect::exact_dataset_at(&pg.url(), "leader_kill", 4000).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cron_schedule_fires_at_the_next_minute() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().records(50).start().await?;
    let db = cluster.out_path("cron.db");
    let yaml = pipelines::doc(
        "every-minute",
        &format!(
            r#"  schedule: {{ cron: "* * * * *" }}
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/all"
  sink:
    sqlite: {{ path: "{}", table: users }}
"#,
            db.display()
        ),
    );
    let run_id = cluster.submit("cron", &yaml)?;
    assert_eq!(run_id, 0, "a scheduled pipeline does not run on submit");
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

/// Retention: with `--keep-runs 2` a pipeline on `every: 1s` keeps its two newest finished
/// runs, a SIGKILLed worker is forgotten after `--forget-workers-after` (3 s, past its 2 s
/// lease TTL), and both deletions
/// hold across a coordinator restart (they were written to RocksDB, shards included).
#[tokio::test(flavor = "multi_thread")]
async fn old_runs_and_silent_workers_leave_the_coordinators_state() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .workers(2)
        .records(100)
        .lease_ttl(Duration::from_secs(2))
        .coordinator_env("APITAP_KEEP_RUNS", "2")
        .coordinator_env("APITAP_FORGET_WORKERS_AFTER", "3s")
        .start()
        .await?;
    let db = cluster.out_path("frequent.db");
    let yaml = pipelines::sharded_sqlite("frequent", 100, 2, 50, &db)
        .replace("spec:\n", "spec:\n  schedule: { every: 1s }\n");
    assert!(yaml.contains("every: 1s"), "{yaml}");
    cluster.submit("frequent", &yaml)?;
    let runs = |cluster: &TestCluster| -> Option<Vec<(u64, String)>> {
        let v = cluster
            .ctl_json(&["get", "runs", "--pipeline", "frequent"])
            .ok()?;
        v.as_array()?
            .iter()
            .map(|r| Some((r["run_id"].as_u64()?, r["state"].as_str()?.to_string())))
            .collect()
    };
    let finished = |runs: &[(u64, String)]| -> Vec<u64> {
        let mut ids: Vec<u64> = runs
            .iter()
            .filter(|(_, s)| s == "succeeded")
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    };
    // Five runs have started, and only the two newest finished ones are left.
    let kept = wait::until(
        "five runs, two finished ones kept",
        Duration::from_secs(90),
        || {
            let runs = runs(&cluster)?;
            let newest = runs.iter().map(|(id, _)| *id).max()?;
            let done = finished(&runs);
            (newest >= 5 && done.len() == 2 && runs.len() <= 3).then_some(done)
        },
    )?;
    assert!(kept[0] >= 3, "the oldest runs went first: kept {kept:?}");

    // A worker that dies is forgotten once silent for 3 s and without leases.
    let gone = cluster.workers[1].id.clone();
    let stays = cluster.workers[0].id.clone();
    let listed = |cluster: &TestCluster| -> Option<Vec<String>> {
        let s = cluster.cluster_status().ok()?;
        s["workers"]
            .as_array()?
            .iter()
            .map(|w| w["worker_id"].as_str().map(String::from))
            .collect()
    };
    let before = listed(&cluster).unwrap_or_default();
    assert!(
        before.contains(&gone) && before.contains(&stays),
        "{before:?}"
    );
    cluster.worker_proc(1).expect("worker 1 runs").kill();
    wait::until(
        "the killed worker forgotten",
        Duration::from_secs(60),
        || listed(&cluster)?.iter().all(|w| *w != gone).then_some(()),
    )?;

    // After a restart from RocksDB, neither comes back.
    cluster
        .coordinator_proc(0)
        .expect("coordinator runs")
        .kill();
    cluster.start_coordinator(0)?;
    cluster.wait_for_leader(Duration::from_secs(30))?;
    let after = wait::until(
        "runs listed after the restart",
        Duration::from_secs(30),
        || runs(&cluster),
    )?;
    let oldest_kept = kept[0];
    assert!(
        after.iter().all(|(id, _)| *id >= oldest_kept),
        "a pruned run is back after the restart: {after:?} (kept {kept:?})"
    );
    assert!(finished(&after).len() <= 3, "{after:?}");
    let workers = wait::until("the live worker listed", Duration::from_secs(30), || {
        listed(&cluster).filter(|w| w.contains(&stays))
    })?;
    assert!(!workers.contains(&gone), "{gone} is back: {workers:?}");
    Ok(())
}
