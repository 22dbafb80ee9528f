//! A worker aborts right before or right after a sink commit (the worker's named fail points,
//! `--features apitap-worker/failpoints`); its shards move on and the sink still holds every
//! record exactly once.

use std::time::Duration;

use apitap_chaos::testbed::wait;
use apitap_cluster_tests::{expect, fixture, pipelines};

const RECORDS: u64 = 4_000;

/// Starts a run, restarts worker-1 with `failpoint` armed, waits until it aborted there,
/// starts it again without, and checks the table once the run succeeded.
async fn crash_at(failpoint: &str, table: &str) -> anyhow::Result<()> {
    let (pg, builder) = fixture::warehouse()?;
    let mut cluster = builder
        .coordinators(1)
        .workers(2)
        .records(RECORDS)
        .lease_ttl(Duration::from_secs(2))
        .start()
        .await?;
    fixture::assert_failpoints(&cluster);
    fixture::slow_source(&cluster, 100);
    // Armed before the run, so that worker-1's very first commit hits the fail point.
    cluster.worker_proc(0).expect("running").kill();
    let setting = format!("{failpoint}=return");
    cluster.start_worker_with_env(0, &[("FAILPOINTS", &setting)])?;
    let name = table.replace('_', "-");
    let run = cluster.submit(&name, &pipelines::sharded(&name, RECORDS, 8))?;
    let status = wait::until(
        &format!("worker-1 to abort at {failpoint}"),
        Duration::from_secs(60),
        || cluster.workers[0].proc.as_mut().and_then(|p| p.try_wait()),
    );
    let status = status?;
    assert!(!status.success(), "worker-1 exited cleanly: {status}");
    cluster.start_worker(0)?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    expect::exact_dataset_at(&pg.url(), table, RECORDS).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_right_after_a_commit_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    crash_at("sink::after_commit", "crash_after_commit").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_right_before_a_commit_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    crash_at("sink::before_commit", "crash_before_commit").await
}
