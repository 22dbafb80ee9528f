//! `apitap-chaos bench load`: end-to-end throughput of the workers loading the mock dataset
//! into a throwaway sink (submit → run succeeded), printed as records per second. With the
//! PostgreSQL sink it also times PostgreSQL's own `COPY` of the same rows from a CSV file,
//! the physical limit of that sink, and gives the ratio. With the RabbitMQ sink the rows are
//! the messages in the queue the sink declares (at least once: a run without faults
//! publishes each record once, which the count checks).

use std::time::{Duration, Instant};

use sqlx::Row;

use crate::mock_api::{Fault, FaultSpec};
use crate::testbed::rabbitmq::queue_len;
use crate::testbed::{TempMariadb, TempPostgres, TempRabbitmq, TestCluster};

/// The sink a load bench writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkKind {
    Postgres,
    Sqlite,
    Mysql,
    /// Parquet parts in a local folder (the files sink).
    Files,
    /// One message per row on a throwaway RabbitMQ node.
    Rabbitmq,
}

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

/// The sink's server (if any) and how to reach it.
enum Sink {
    Postgres(TempPostgres),
    Mysql(TempMariadb),
    Sqlite(std::path::PathBuf),
    Files(std::path::PathBuf),
    /// Started before the cluster: its password is a secret of the submit.
    Rabbitmq(TempRabbitmq),
}

impl Sink {
    fn start(kind: SinkKind, cluster: &TestCluster) -> anyhow::Result<Self> {
        Ok(match kind {
            SinkKind::Postgres => Sink::Postgres(TempPostgres::start()?),
            SinkKind::Mysql => Sink::Mysql(TempMariadb::start()?),
            SinkKind::Sqlite => Sink::Sqlite(cluster.out_path("bench.db")),
            SinkKind::Files => Sink::Files(cluster.out_path("bench-files")),
            SinkKind::Rabbitmq => anyhow::bail!("the RabbitMQ node starts before the cluster"),
        })
    }

    /// The `sink:` of the pipeline.
    fn yaml(&self) -> String {
        match self {
            Sink::Postgres(pg) => {
                format!("postgres: {{ url: \"{}\", table: bench_users }}", pg.url())
            }
            Sink::Mysql(db) => format!("mysql: {{ url: \"{}\", table: bench_users }}", db.url()),
            Sink::Sqlite(path) => {
                format!(
                    "sqlite: {{ path: \"{}\", table: bench_users }}",
                    path.display()
                )
            }
            Sink::Files(dir) => format!(
                "files: {{ url: \"{}\", table: bench_users, format: parquet }}",
                dir.display()
            ),
            Sink::Rabbitmq(node) => format!(
                "rabbitmq: {{ url: \"{}\", exchange: amq.direct, routing_key: bench_users, queue: bench_users }}",
                node.url_with_secret("RABBITMQ_PASSWORD")
            ),
        }
    }

    async fn rows(&self) -> anyhow::Result<i64> {
        const COUNT: &str = "SELECT COUNT(*) FROM bench_users";
        Ok(match self {
            Sink::Postgres(pg) => {
                let pool = sqlx::PgPool::connect(&pg.url()).await?;
                sqlx::query(COUNT).fetch_one(&pool).await?.get(0)
            }
            Sink::Mysql(db) => {
                let pool = sqlx::MySqlPool::connect(&db.url()).await?;
                sqlx::query(COUNT).fetch_one(&pool).await?.get(0)
            }
            Sink::Sqlite(path) => {
                let pool =
                    sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await?;
                sqlx::query(COUNT).fetch_one(&pool).await?.get(0)
            }
            Sink::Files(dir) => manifest_rows(&dir.join("bench_users/_apitap"))?,
            Sink::Rabbitmq(node) => i64::from(queue_len(&node.url(), "bench_users").await?),
        })
    }
}

/// The rows the files sink's manifest entries (`v-N.json`) under `dir` make visible.
fn manifest_rows(dir: &std::path::Path) -> anyhow::Result<i64> {
    let mut rows = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rows += manifest_rows(&path)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("v-") && n.ends_with(".json"))
        {
            let entry: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
            rows += entry["rows"].as_i64().unwrap_or(0);
        }
    }
    Ok(rows)
}

fn pipeline(b: &LoadBench, sink: &Sink) -> String {
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
        sink = sink.yaml(),
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

pub async fn load(b: LoadBench) -> anyhow::Result<serde_json::Value> {
    let rabbitmq = match b.sink {
        SinkKind::Rabbitmq => Some(TempRabbitmq::start().await?),
        _ => None,
    };
    let mut builder = TestCluster::builder()
        .coordinators(1)
        .workers(b.workers)
        .slots(b.slots)
        .records(b.records);
    if let Some(node) = &rabbitmq {
        builder = builder.secret("RABBITMQ_PASSWORD", &node.password);
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
    let sink = match rabbitmq {
        Some(node) => Sink::Rabbitmq(node),
        None => Sink::start(b.sink, &cluster)?,
    };
    let started = Instant::now();
    let run = cluster.submit("bench-load", &pipeline(&b, &sink))?;
    let info = cluster.wait_for_run(run, Duration::from_secs(3600))?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        info["state"] == "succeeded",
        "bench run did not succeed: {info:#}"
    );
    let rows = sink.rows().await?;
    anyhow::ensure!(
        rows as u64 == b.records,
        "loaded {rows} rows, expected {}",
        b.records
    );
    let secs = elapsed.as_secs_f64();
    let rate = b.records as f64 / secs;
    let mut out = serde_json::json!({
        "records": b.records,
        "columns": 8,
        "page_size": b.page_size,
        "workers": b.workers,
        "slots": b.slots,
        "shards": b.shards.max(1),
        "sink": format!("{:?}", b.sink).to_lowercase(),
        "latency_ms": b.latency.as_millis() as u64,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "records_per_second": rate.round(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    if let Sink::Postgres(pg) = &sink {
        let copy = copy_seconds(pg).await?;
        let copy_rate = b.records as f64 / copy;
        out["copy_records_per_second"] = copy_rate.round().into();
        out["ratio_to_copy"] = ((rate / copy_rate * 1000.0).round() / 1000.0).into();
    }
    Ok(out)
}
