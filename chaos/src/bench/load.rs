//! `apitap-chaos bench load`: end-to-end throughput of the workers loading the mock dataset
//! into a throwaway sink (submit → run succeeded), printed as records per second. With the
//! PostgreSQL sink it also times PostgreSQL's own `COPY` of the same rows from a CSV file,
//! the physical limit of that sink, and gives the ratio.

use std::time::{Duration, Instant};

use crate::mock_api::{Fault, FaultSpec};
use crate::testbed::{SinkBed, SinkKind, TempPostgres, TestCluster};
use apitap_common::spec::FileFormat;

pub struct LoadBench {
    pub records: u64,
    pub page_size: u64,
    pub workers: usize,
    /// Shards each worker runs at once.
    pub slots: u32,
    pub shards: u32,
    pub sink: SinkKind,
    /// Added to every upstream request.
    pub latency: Duration,
}

fn pipeline(b: &LoadBench, sink: &SinkBed) -> String {
    let (shards, id_range) = if b.shards > 1 {
        (
            format!(
                "  shards: {{ param: ids, range: {{ start: 1, end: {}, count: {} }} }}\n",
                b.records, b.shards
            ),
            "?from_id={{ shard.start }}&to_id={{ shard.end }}",
        )
    } else {
        (String::new(), "")
    };
    format!(
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
    {sink}
"#,
        page = b.page_size,
        sink = sink.yaml("bench_users"),
    )
}

/// Seconds PostgreSQL takes to `COPY` the loaded rows, as CSV sent by a client, into an
/// empty table of the same shape (the CSV is read out first with `COPY … TO STDOUT`, not
/// timed).
async fn copy_seconds(pg: &TempPostgres) -> anyhow::Result<f64> {
    use futures::TryStreamExt;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg.url()).await?;
    let csv: Vec<u8> = conn
        .copy_out_raw("COPY bench_users TO STDOUT WITH (FORMAT csv)")
        .await?
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await?;
    sqlx::query("CREATE TABLE bench_copy (LIKE bench_users)")
        .execute(&mut conn)
        .await?;
    let t = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY bench_copy FROM STDIN WITH (FORMAT csv)")
        .await?;
    copy.send(csv).await?;
    copy.finish().await?;
    Ok(t.elapsed().as_secs_f64())
}

/// The peak resident set of process `pid` (`VmHWM` of `/proc/PID/status`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub async fn load(b: LoadBench) -> anyhow::Result<serde_json::Value> {
    let data = tempfile::Builder::new().prefix("apitap-bench-").tempdir()?;
    let sink = SinkBed::start(b.sink, data.path(), FileFormat::Parquet)?;
    let mut builder = TestCluster::builder()
        .coordinators(1)
        .workers(b.workers)
        .slots(b.slots)
        .records(b.records);
    if let Some(url) = sink.secret() {
        builder = builder.secret("WAREHOUSE_URL", &url);
    }
    let cluster = builder.start().await?;
    if !b.latency.is_zero() {
        cluster.mock.state().push_fault(FaultSpec {
            fault: Fault::Latency {
                ms: b.latency.as_millis() as u64,
            },
            count: u64::MAX,
        });
    }
    let started = Instant::now();
    let run = cluster.submit("bench-load", &pipeline(&b, &sink))?;
    let info = cluster.wait_for_run(run, Duration::from_secs(3600))?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        info["state"] == "succeeded",
        "bench run did not succeed: {info:#}"
    );
    let reader = sink.reader().await?;
    let rows = reader.rows("bench_users").await?;
    reader.close().await;
    anyhow::ensure!(
        rows == b.records,
        "loaded {rows} rows, expected {}",
        b.records
    );
    let peak_rss_mib: Vec<u64> = cluster
        .workers
        .iter()
        .filter_map(|w| w.proc.as_ref().and_then(|p| peak_rss_kib(p.pid())))
        .map(|kib| kib / 1024)
        .collect();
    let secs = elapsed.as_secs_f64();
    let rate = b.records as f64 / secs;
    let mut out = serde_json::json!({
        "records": b.records,
        "columns": 8,
        "page_size": b.page_size,
        "workers": b.workers,
        "slots": b.slots,
        "shards": b.shards.max(1),
        "sink": b.sink.name(),
        "latency_ms": b.latency.as_millis() as u64,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "records_per_second": rate.round(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "worker_peak_rss_mib": peak_rss_mib,
    });
    if let Some(pg) = sink.postgres() {
        let copy = copy_seconds(pg).await?;
        let copy_rate = b.records as f64 / copy;
        out["copy_records_per_second"] = copy_rate.round().into();
        out["ratio_to_copy"] = ((rate / copy_rate * 1000.0).round() / 1000.0).into();
    }
    Ok(out)
}
