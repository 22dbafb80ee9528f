//! Workers die, freeze and drain mid-run; every record still lands exactly once.

use std::time::Duration;

use apitap_chaos::testbed::{TempPostgres, TestCluster};
use apitap_cluster_tests::fixture::{self, assert_terminates, slow_source, wait_for_progress};
use apitap_cluster_tests::{expect, pipelines};
use serde_json::Value;

const RECORDS: u64 = 6_000;

/// (shard index, fence) of the leases `worker` holds in `run`.
fn leases_of(run: &Value, worker: &str) -> Vec<(u64, u64)> {
    run["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["worker"] == worker && s["state"] == "leased")
        .map(|s| {
            (
                s["index"].as_u64().unwrap_or(0),
                s["fence"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

async fn cluster_with_pg(
    workers: usize,
    env: &[(&str, &str)],
) -> anyhow::Result<(TempPostgres, TestCluster)> {
    let (pg, builder) = fixture::warehouse()?;
    let mut b = builder
        .coordinators(1)
        .workers(workers)
        .records(RECORDS)
        .lease_ttl(Duration::from_secs(2));
    for (k, v) in env {
        b = b.worker_env(k, v);
    }
    Ok((pg, b.start().await?))
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_workers_shards_move_with_higher_fences_and_data_stays_exact() -> anyhow::Result<()>
{
    let (pg, mut cluster) = cluster_with_pg(3, &[]).await?;
    slow_source(&cluster, 250);
    let run = cluster.submit("kill", &pipelines::sharded("kill-worker", RECORDS, 12))?;
    let before = wait_for_progress(&cluster, run)?;
    let victim = "worker-1";
    let lost = leases_of(&before, victim);
    assert!(!lost.is_empty(), "worker-1 holds no lease: {before:#}");
    cluster.worker_proc(0).expect("running").kill();

    let info = fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    for (index, old_fence) in lost {
        let s = &info["shards"][index as usize];
        assert_ne!(
            s["worker"], victim,
            "shard {index} still on the dead worker"
        );
        assert!(
            s["fence"].as_u64().unwrap() > old_fence,
            "shard {index}: fence did not grow: {s}"
        );
    }
    expect::exact_dataset_at(&pg.url(), "kill_worker", RECORDS).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_zombie_is_fenced_out_of_the_sink() -> anyhow::Result<()> {
    // The zombie ignores revocations, as a worker cut off from the coordinator would: only
    // the sink's fence can stop it.
    let (pg, mut cluster) =
        cluster_with_pg(2, &[("APITAP_FAULT_IGNORE_REVOCATIONS", "true")]).await?;
    fixture::assert_failpoints(&cluster);
    slow_source(&cluster, 150);
    let run = cluster.submit("zombie", &pipelines::sharded("zombie", RECORDS, 1))?;
    let zombie = fixture::make_zombie(&mut cluster, run)?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    fixture::wait_commit_rejected(&cluster, &zombie)?;
    expect::exact_dataset_at(&pg.url(), "zombie", RECORDS).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_releases_leases_and_exits_zero() -> anyhow::Result<()> {
    let (pg, mut cluster) = cluster_with_pg(2, &[]).await?;
    slow_source(&cluster, 200);
    let run = cluster.submit("drain", &pipelines::sharded("drain", RECORDS, 4))?;
    let before = wait_for_progress(&cluster, run)?;
    assert!(!leases_of(&before, "worker-1").is_empty(), "{before:#}");
    assert_terminates(
        cluster.worker_proc(0).expect("running"),
        Duration::from_secs(30),
        "worker-1 did not exit 0 after SIGTERM",
    );

    fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    let coordinator_log = std::fs::read_to_string(cluster.log_path("coordinator-1"))?;
    assert!(
        !coordinator_log.contains("lease expired"),
        "a lease expired instead of being released"
    );
    expect::exact_dataset_at(&pg.url(), "drain", RECORDS).await
}
