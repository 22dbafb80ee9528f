//! Pagination that cannot silently truncate: an API whose next cursor is the last record's
//! id (Stripe's `starting_after` with `has_more`) loads everything, and a cursor path that
//! finds nothing on a full page fails the run with a message that says so, instead of
//! ending `succeeded` with the first page.

use apitap_cluster_tests::expect::total_records;
use std::time::Duration;

use apitap_chaos::testbed::TestCluster;
use apitap_cluster_tests::pipelines;
use serde_json::Value;

/// Runs the pipeline `name` (its table; dashed, its name) with `pagination` over the mock's
/// `starting_after` endpoint into `pages.db` to its end; returns the run.
fn run_to_end(cluster: &TestCluster, name: &str, pagination: &str) -> anyhow::Result<Value> {
    let spec = format!(
        r#"  source:
    http:
      url: "${{MOCK_API_URL}}/v1/starting_after"
      records: $.data
      pagination: {pagination}
  sink:
    sqlite: {{ path: "{}", table: {name} }}
"#,
        cluster.out_path("pages.db").display()
    );
    let name = name.replace('_', "-");
    let run = cluster.submit(&name, &pipelines::doc(&name, &spec))?;
    cluster.wait_for_run(run, Duration::from_secs(120))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_from_the_last_record_loads_all_and_a_lost_cursor_fails() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().records(1234).start().await?;
    let info = run_to_end(
        &cluster,
        "stripe_like",
        "{ kind: cursor, cursor_field: id, cursor_param: starting_after, has_more_path: $.has_more, size: 100 }",
    )?;
    assert_eq!(info["state"], "succeeded", "{info:#}");
    assert_eq!(total_records(&info), 1234, "{info:#}");

    // The closest spec without `cursor_field`: a path that finds no cursor on a full page.
    let info = run_to_end(
        &cluster,
        "lost_cursor",
        "{ kind: cursor, cursor_path: $.next_cursor, cursor_param: starting_after, size: 100 }",
    )?;
    assert_eq!(info["state"], "failed", "{info:#}");
    let error = info["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the page was full (100 records") && error.contains("stop_on: no_next"),
        "{info:#}"
    );
    Ok(())
}
