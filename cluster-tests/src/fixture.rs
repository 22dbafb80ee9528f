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
