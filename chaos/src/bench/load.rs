//! `apitap-chaos bench load`: end-to-end throughput of one worker loading the mock dataset
//! into a throwaway PostgreSQL (submit → run succeeded), printed as records per second.

use std::time::{Duration, Instant};

use sqlx::Row;

use crate::testbed::{TempPostgres, TestCluster};

pub struct LoadBench {
    pub records: u64,
    pub page_size: u64,
    pub workers: usize,
    pub shards: u32,
}

pub async fn load(b: LoadBench) -> anyhow::Result<serde_json::Value> {
    let pg = TempPostgres::start()?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .workers(b.workers)
        .records(b.records)
        .start()
        .await?;
    let shards = if b.shards > 1 {
        format!(
            "  shards: {{ param: ids, range: {{ start: 1, end: {}, count: {} }} }}\n",
            b.records, b.shards
        )
    } else {
        String::new()
    };
    let id_range = if b.shards > 1 {
        "?from_id={{ shard.start }}&to_id={{ shard.end }}"
    } else {
        ""
    };
    let yaml = format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata:
  name: bench-load
spec:
{shards}  source:
    http:
      url: "${{MOCK_API_URL}}/v1/cursor{id_range}"
      records: $.data
      pagination: {{ kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: {page} }}
  sink:
    postgres: {{ url: "{url}", table: bench_users }}
"#,
        page = b.page_size,
        url = pg.url(),
    );
    let started = Instant::now();
    let run = cluster.submit("bench-load", &yaml)?;
    let info = cluster.wait_for_run(run, Duration::from_secs(3600))?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        info["state"] == "succeeded",
        "bench run did not succeed: {info:#}"
    );
    let pool = sqlx::PgPool::connect(&pg.url()).await?;
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM bench_users")
        .fetch_one(&pool)
        .await?
        .get(0);
    anyhow::ensure!(
        rows as u64 == b.records,
        "loaded {rows} rows, expected {}",
        b.records
    );
    let secs = elapsed.as_secs_f64();
    Ok(serde_json::json!({
        "records": b.records,
        "columns": 8,
        "page_size": b.page_size,
        "workers": b.workers,
        "shards": b.shards.max(1),
        "seconds": (secs * 1000.0).round() / 1000.0,
        "records_per_second": (b.records as f64 / secs).round(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    }))
}
