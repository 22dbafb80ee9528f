//! What many cluster tests set up or do the same way: a warehouse for the cluster, a slow
//! source, waiting for a run to load something, killing the Raft leader, stopping a node
//! with SIGTERM.

use std::time::Duration;

use apitap_chaos::mock_api::{Fault, FaultSpec};
use apitap_chaos::testbed::process::Proc;
use apitap_chaos::testbed::{wait, ClusterBuilder, TempPostgres, TestCluster};
use serde_json::Value;

use crate::expect::total_records;

/// A fresh PostgreSQL and a cluster builder whose pipelines reach it as `${WAREHOUSE_URL}`.
pub fn warehouse() -> anyhow::Result<(TempPostgres, ClusterBuilder)> {
    let pg = TempPostgres::start()?;
    let builder = TestCluster::builder().secret("WAREHOUSE_URL", &pg.url());
    Ok((pg, builder))
}

/// `coordinators` coordinators and `workers` workers with a PostgreSQL warehouse
/// ([`warehouse`]) and `records` mock records.
pub async fn warehouse_cluster(
    coordinators: usize,
    workers: usize,
    records: u64,
) -> anyhow::Result<(TempPostgres, TestCluster)> {
    let (pg, builder) = warehouse()?;
    let cluster = builder
        .coordinators(coordinators)
        .workers(workers)
        .records(records)
        .start()
        .await?;
    Ok((pg, cluster))
}

/// `coordinators` coordinators and `workers` workers, with no warehouse and the mock API's
/// default records.
pub async fn cluster(coordinators: usize, workers: usize) -> anyhow::Result<TestCluster> {
    TestCluster::builder()
        .coordinators(coordinators)
        .workers(workers)
        .start()
        .await
}

/// Asserts that the workers were built with fault injection, which the test needs.
pub fn assert_failpoints(cluster: &TestCluster) {
    assert!(
        cluster.workers.iter().all(|w| w.failpoints),
        "apitap-worker was built without fault injection: build with `--features apitap-worker/failpoints` (scripts/test.sh does)"
    );
}

/// The mock API answers every request `ms` later (for the next 100 000 requests), so that a
/// run is still going when the test acts on it.
pub fn slow_source(cluster: &TestCluster, ms: u64) {
    cluster.mock.state().push_fault(FaultSpec {
        fault: Fault::Latency { ms },
        count: 100_000,
    });
}

/// Waits (up to 60 s) until `run` has loaded a record; returns the run as
/// `describe run -o json` shows it then.
pub fn wait_for_progress(cluster: &TestCluster, run: u64) -> anyhow::Result<Value> {
    wait::until("progress", Duration::from_secs(60), || {
        let info = cluster.run_info(run).ok()?;
        (total_records(&info) > 0).then_some(info)
    })
}

/// Waits up to `timeout` for `run` to end and asserts that it succeeded; returns the run
/// as `describe run -o json` shows it.
pub fn wait_succeeded(cluster: &TestCluster, run: u64, timeout: Duration) -> anyhow::Result<Value> {
    let info = cluster.wait_for_run(run, timeout)?;
    assert_eq!(info["state"], "succeeded", "{info:#}");
    Ok(info)
}

/// Makes a zombie of the worker that holds shard 0 of `run` (once it loaded something): it
/// is frozen (SIGSTOP) until the shard moved to another worker under a higher fence, then
/// thawed (SIGCONT). Returns the zombie's name. Its workers should ignore revocations
/// (`APITAP_FAULT_IGNORE_REVOCATIONS`), so that only the sink's fence stops it.
pub fn make_zombie(cluster: &mut TestCluster, run: u64) -> anyhow::Result<String> {
    let before = wait_for_progress(cluster, run)?;
    let holder = before["shards"][0]["worker"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let old_fence = before["shards"][0]["fence"].as_u64().unwrap_or_default();
    let idx = usize::from(holder != "worker-1");
    cluster
        .worker_proc(idx)
        .ok_or_else(|| anyhow::anyhow!("{holder} is not running"))?
        .signal(libc::SIGSTOP);
    wait::until("the shard to move", Duration::from_secs(60), || {
        let r = cluster.run_info(run).ok()?;
        let s = &r["shards"][0];
        (s["fence"].as_u64()? > old_fence && s["worker"] != holder.as_str()).then_some(())
    })?;
    cluster
        .worker_proc(idx)
        .ok_or_else(|| anyhow::anyhow!("{holder} is not running"))?
        .signal(libc::SIGCONT);
    Ok(holder)
}

/// Waits (up to 30 s) until `worker`'s log shows a commit the sink refused.
pub fn wait_commit_rejected(cluster: &TestCluster, worker: &str) -> anyhow::Result<()> {
    let log = cluster.log_path(worker);
    wait::until(
        &format!("{worker}'s rejected commit in its log"),
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&log)
                .ok()?
                .contains("commit rejected")
                .then_some(())
        },
    )
}

/// SIGKILLs the coordinator that leads now (waiting up to 10 s for one).
pub fn kill_leader(cluster: &mut TestCluster) -> anyhow::Result<()> {
    let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
    let idx = cluster
        .coordinators
        .iter()
        .position(|c| c.id == leader)
        .ok_or_else(|| anyhow::anyhow!("the leader {leader} is not a member"))?;
    cluster
        .coordinator_proc(idx)
        .ok_or_else(|| anyhow::anyhow!("the leader {leader} is not running"))?
        .kill();
    Ok(())
}

/// Sends SIGTERM to `proc` and asserts that it exits with status 0 within `timeout`;
/// `what` names it in the failure.
pub fn assert_terminates(proc: &mut Proc, timeout: Duration, what: &str) {
    let status = proc.terminate(timeout);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{what}");
}
