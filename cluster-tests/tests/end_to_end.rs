//! The whole path on real processes: apitapctl → coordinator → workers → mock API →
//! DataFusion → PostgreSQL, once per pagination kind.

use std::time::Duration;

use apitap_chaos::testbed::{TempPostgres, TestCluster};
use apitap_cluster_tests::{expect, fixture, pipelines};

const RECORDS: u64 = 1_250;

fn pipeline(kind: &str, pagination: &str, records: &str) -> String {
    let spec = format!(
        r#"  source:
    http:
      url: "${{MOCK_API_URL}}/v1/{kind}"
      {records}
      pagination: {pagination}
  sink:
    postgres:
      url: "${{WAREHOUSE_URL}}"
      table: users_{kind}
"#
    );
    pipelines::doc(&format!("users-{}", kind.replace('_', "-")), &spec)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_pagination_kind_loads_the_exact_dataset() -> anyhow::Result<()> {
    let (pg, cluster) = fixture::warehouse_cluster(1, 2, RECORDS).await?;

    let cases = [
        (
            "limit_offset",
            "{ kind: limit_offset, size: 100, total_path: $.total }",
            "records: $.data",
        ),
        (
            "page_number",
            "{ kind: page_number, size: 120 }",
            "records: $.data",
        ),
        (
            "cursor",
            "{ kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: 150 }",
            "records: $.data",
        ),
        (
            "next_url",
            "{ kind: next_url, next_url_path: $.next }",
            "records: $.data",
        ),
        ("link_header", "{ kind: link_header }", ""),
        ("all", "{ kind: none }", ""),
    ];
    let mut runs = Vec::new();
    for (kind, pagination, records) in cases {
        let run = cluster.submit(kind, &pipeline(kind, pagination, records))?;
        runs.push((kind, run));
    }
    let pool = sqlx::PgPool::connect(&pg.url()).await?;
    for (kind, run) in runs {
        let info = cluster.wait_for_run(run, Duration::from_secs(120))?;
        assert_eq!(info["state"], "succeeded", "run of {kind}: {info:#}");
        expect::exact_dataset(&pool, &format!("users_{kind}"), RECORDS).await?;
    }

    // A rejected submit stores nothing.
    let bad = cluster.out_path("bad.yaml");
    std::fs::write(
        &bad,
        pipeline("cursor", "{ kind: cursor }", "records: $.data")
            .replace("users-cursor", "half-stored"),
    )?;
    let out = cluster.ctl(&["submit", &bad.display().to_string()])?;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let listed = cluster.ctl_json(&["get", "pipelines"])?;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(!names.contains(&"half-stored"), "{names:?}");
    assert_eq!(names.len(), 6, "{names:?}");
    Ok(())
}

/// A warehouse that accepts TCP connections over TLS only: `sslmode=require` loads the exact
/// dataset; `sslmode=disable` is refused by the server, which shows the load went over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_only_warehouse_is_loaded_over_tls() -> anyhow::Result<()> {
    let pg = TempPostgres::start_tls()?;
    let cluster = TestCluster::builder()
        .secret("WAREHOUSE_URL", &pg.url())
        .secret("PLAIN_URL", &pg.url_without_tls())
        .coordinators(1)
        .workers(1)
        .records(RECORDS)
        .start()
        .await?;
    let run = cluster.submit(
        "over-tls",
        &apitap_cluster_tests::pipelines::sharded("over-tls", RECORDS, 2),
    )?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(120))?;
    expect::exact_dataset_at(&pg.url(), "over_tls", RECORDS).await?;

    let plain = apitap_cluster_tests::pipelines::sharded("plain", RECORDS, 1)
        .replace("${WAREHOUSE_URL}", "${PLAIN_URL}")
        .replace("  source:", "  policy: { max_attempts: 1 }\n  source:");
    let run = cluster.submit("plain", &plain)?;
    let info = cluster.wait_for_run(run, Duration::from_secs(120))?;
    assert_eq!(info["state"], "failed", "{info:#}");
    let error = info.to_string();
    assert!(
        error.contains("no encryption") || error.contains("pg_hba.conf"),
        "the server should refuse the unencrypted connection: {info:#}"
    );
    Ok(())
}
