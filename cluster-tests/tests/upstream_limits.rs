//! The limits on what an upstream API can make a pipeline do, on real processes against the
//! mock API (docs/operations.md, "Limits of upstream APIs"): a far-future cursor value, an
//! API that pages for ever, and a huge `Retry-After`.

use apitap_cluster_tests::expect::total_records;
use apitap_cluster_tests::fixture;
use apitap_cluster_tests::pipelines;
use std::time::Duration;

use apitap_chaos::mock_api::{Fault, FaultSpec};
use apitap_chaos::testbed::TestCluster;

/// Requests the mock API answered for `path`.
fn requests_to(cluster: &TestCluster, path: &str) -> Vec<apitap_chaos::mock_api::RequestLogEntry> {
    cluster
        .mock
        .state()
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

/// Every worker's log, one after the other.
fn worker_logs(cluster: &TestCluster) -> anyhow::Result<String> {
    let mut all = String::new();
    for entry in std::fs::read_dir(cluster.logs())? {
        let path = entry?.path();
        let is_worker = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("worker-"));
        if is_worker {
            all.push_str(&std::fs::read_to_string(&path)?);
        }
    }
    Ok(all)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_far_future_record_does_not_stop_later_incremental_runs() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().records(500).start().await?;
    let db = cluster.out_path("future.db");
    // Record 250 is dated 9999-12-31; the API serves what changed after the watermark.
    let yaml = pipelines::doc(
        "future",
        &format!(
            r#"  incremental: {{ cursor_field: createdAt, initial: "2025-01-01T00:00:00Z" }}
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/updated"
      query: {{ updated_after: "{{{{ watermark }}}}", far_future_id: "250" }}
      records: $.data
      pagination: {{ kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: 100 }}
  sink:
    sqlite: {{ path: "{}", table: users, mode: merge, primary_key: [id] }}
"#,
            db.display()
        ),
    );
    let first = cluster.submit("future", &yaml)?;
    let info = fixture::wait_succeeded(&cluster, first, Duration::from_secs(60))?;
    assert_eq!(total_records(&info), 500);

    cluster.mock.state().dataset().grow(120);
    let second = cluster.ctl_json(&["run", "future"])?["run_id"]
        .as_u64()
        .expect("run id");
    let info = fixture::wait_succeeded(&cluster, second, Duration::from_secs(60))?;
    // The 120 new records, and the far-future one again: it is newer than any watermark,
    // so the API keeps serving it (merge mode keeps one row of it).
    assert_eq!(total_records(&info), 121, "{info:#}");
    let asked = requests_to(&cluster, "/v1/updated");
    let last = asked.last().expect("requests");
    assert!(
        last.query
            .contains("updated_after=2026-01-01T08%3A20%3A00Z"),
        "the second run asks for what is newer than record 500: {}",
        last.query
    );
    let worker_log = worker_logs(&cluster)?;
    assert!(
        worker_log.contains("limit max_future_skew"),
        "the far-future value is reported"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shard_over_its_page_budget_fails_once_naming_the_key() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().records(500).start().await?;
    let db = cluster.out_path("budget.db");
    let yaml = pipelines::doc(
        "budget",
        &format!(
            r#"  source:
    http:
      url: "${{MOCK_API_URL}}/v1/cursor"
      records: $.data
      pagination: {{ kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: 100 }}
      limits: {{ max_pages: 3 }}
  sink:
    sqlite: {{ path: "{}", table: users }}
"#,
            db.display()
        ),
    );
    let run = cluster.submit("budget", &yaml)?;
    let info = cluster.wait_for_run(run, Duration::from_secs(60))?;
    assert_eq!(info["state"], "failed", "{info:#}");
    let error = info["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the shard has fetched 3 pages and the source has more, over the limit shard_max_pages of 3 pages")
            && error.contains("spec.source.http.limits.max_pages"),
        "{info:#}"
    );
    assert_eq!(
        total_records(&info),
        300,
        "the pages within the budget are kept"
    );
    // A user error: the shard is not retried, so the API saw the 3 pages once.
    assert_eq!(requests_to(&cluster, "/v1/cursor").len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_retry_after_is_clamped_to_the_pipeline_maximum() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().records(50).start().await?;
    let db = cluster.out_path("patient.db");
    // Without the clamp the worker would wait 2 minutes (4 × max_backoff) and the
    // cluster-wide back-off of the key would last an hour.
    cluster.mock.state().push_fault(FaultSpec {
        fault: Fault::Status {
            status: 429,
            retry_after_secs: Some(1_000_000_000),
        },
        count: 1,
    });
    let yaml = pipelines::doc(
        "patient",
        &format!(
            r#"  rate_limit: {{ key: mock-api, requests_per_second: 50, burst: 10 }}
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/all"
      retry: {{ max_attempts: 3, max_retry_after: 1s }}
  sink:
    sqlite: {{ path: "{}", table: users }}
"#,
            db.display()
        ),
    );
    let run = cluster.submit("patient", &yaml)?;
    let info = fixture::wait_succeeded(&cluster, run, Duration::from_secs(30))?;
    assert_eq!(total_records(&info), 50);
    let asked = requests_to(&cluster, "/v1/all");
    assert_eq!(asked.len(), 2, "one 429, one retry");
    assert_eq!(asked[0].status, 429);
    let waited = asked[1].at_ms.saturating_sub(asked[0].at_ms);
    assert!(
        (900..10_000).contains(&waited),
        "the retry came {waited} ms after the 429"
    );
    let worker_log = worker_logs(&cluster)?;
    assert!(
        worker_log.contains("limit max_retry_after"),
        "the clamp is logged"
    );
    Ok(())
}
