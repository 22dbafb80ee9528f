//! The coordinator dies mid-run (SIGKILL) and comes back on the same data directory: the
//! pipeline and run are still there and the run finishes with exact data.

use std::time::Duration;

use apitap_chaos::testbed::wait;
use apitap_cluster_tests::{expect, fixture, pipelines};

const RECORDS: u64 = 6_000;

#[tokio::test(flavor = "multi_thread")]
async fn coordinator_restart_mid_run_keeps_state_and_finishes_exactly() -> anyhow::Result<()> {
    let (pg, mut cluster) = fixture::warehouse_cluster(1, 1, RECORDS).await?;
    // Slow the source down so the run is still going when the coordinator dies.
    cluster
        .mock
        .state()
        .push_fault(apitap_chaos::mock_api::FaultSpec {
            fault: apitap_chaos::mock_api::Fault::Latency { ms: 40 },
            count: 60,
        });
    let yaml = pipelines::doc(
        "restart-users",
        r#"  source:
    http:
      url: "${MOCK_API_URL}/v1/limit_offset"
      records: $.data
      pagination: { kind: limit_offset, size: 50 }
  sink:
    postgres: { url: "${WAREHOUSE_URL}", table: restart_users, mode: merge, primary_key: [id] }
"#,
    );
    let run = cluster.submit("restart", &yaml)?;
    wait::until("the run to make progress", Duration::from_secs(60), || {
        let r = cluster.run_info(run).ok()?;
        (r["shards"][0]["records"].as_u64().unwrap_or(0) > 0).then_some(())
    })?;

    cluster.coordinator_proc(0).expect("running").kill();
    cluster.start_coordinator(0)?;
    cluster.wait_for_leader(Duration::from_secs(30))?;

    let pipelines = cluster.ctl_json(&["get", "pipelines"])?;
    assert_eq!(pipelines[0]["name"], "restart-users", "{pipelines:#}");
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(120))?;
    expect::exact_dataset_at(&pg.url(), "restart_users", RECORDS).await?;
    Ok(())
}
