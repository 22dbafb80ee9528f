//! `SinkBed`: a throwaway sink of any kind the workers can load into, and how a checker reads
//! it back: the rows per record id, and the checkpoints the sink holds. Shared by
//! `apitap-chaos bench load` and the drills, so both run against every sink.
//!
//! - PostgreSQL and MariaDB: a throwaway server ([`TempPostgres`], [`TempMariadb`]); the
//!   pipeline reaches it through the secret `${WAREHOUSE_URL}` ([`SinkBed::secret`]).
//! - SQLite: a database file in the bed's folder.
//! - Files: JSON Lines or Parquet parts in the bed's folder, read back through the manifest
//!   log (only what a manifest entry names is visible).
//! - RabbitMQ: a throwaway node ([`TempRabbitmq`]), the AMQP URL as `${WAREHOUSE_URL}`; one
//!   queue per table, read back without consuming it. At least once: a row per message,
//!   duplicates included; its checkpoints (a stream on the broker) are not read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apitap_common::spec::{FileFormat, FilesSink as FilesSpec};
use apitap_worker::fetch::Egress;
use apitap_worker::sink::FilesSink;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::rabbitmq::{queue_len, read_all};
use super::{TempMariadb, TempPostgres, TempRabbitmq};

/// The kinds of sink a bench or a drill loads into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    #[default]
    Postgres,
    Sqlite,
    Mysql,
    /// Parts in a local folder (the files sink): Parquet in benches, JSON Lines in drills.
    Files,
    /// One message per row on a throwaway RabbitMQ node (at least once).
    Rabbitmq,
}

impl SinkKind {
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Postgres => "postgres",
            SinkKind::Sqlite => "sqlite",
            SinkKind::Mysql => "mysql",
            SinkKind::Files => "files",
            SinkKind::Rabbitmq => "rabbitmq",
        }
    }
}

/// A running sink and where it keeps its data.
pub enum SinkBed {
    Postgres(TempPostgres),
    Mysql(TempMariadb),
    /// The database file.
    Sqlite(PathBuf),
    /// The folder of the parts and manifests, and their format.
    Files(PathBuf, FileFormat),
    Rabbitmq(TempRabbitmq),
}

/// What a sink holds for one record id of a table: how many rows, and the smallest and
/// largest `email` and `userName` among them (equal to the source's unless a row is corrupt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRows {
    pub id: i64,
    pub rows: u64,
    pub email: [Option<String>; 2],
    pub user_name: [Option<String>; 2],
    /// For a sink with message ids (RabbitMQ): how many distinct ids the rows carry. Rows
    /// beyond these are redeliveries a consumer drops by message id, not duplicates.
    pub message_ids: Option<u64>,
}

/// One shard's checkpoint as the sink stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// (pipeline, run, shard).
    pub key: (String, i64, i64),
    pub fence: i64,
    pub records: i64,
    pub pages: i64,
}

impl SinkBed {
    /// Starts a sink of `kind`; SQLite and files keep their data in `dir` (created if
    /// absent). Blocking (server start-up).
    pub fn start(kind: SinkKind, dir: &Path, format: FileFormat) -> anyhow::Result<Self> {
        Ok(match kind {
            SinkKind::Postgres => SinkBed::Postgres(TempPostgres::start()?),
            SinkKind::Mysql => SinkBed::Mysql(TempMariadb::start()?),
            SinkKind::Sqlite => {
                std::fs::create_dir_all(dir)?;
                SinkBed::Sqlite(dir.join("warehouse.db"))
            }
            SinkKind::Files => {
                std::fs::create_dir_all(dir)?;
                SinkBed::Files(dir.join("parts"), format)
            }
            SinkKind::Rabbitmq => SinkBed::Rabbitmq(TempRabbitmq::start()?),
        })
    }

    pub fn kind(&self) -> SinkKind {
        match self {
            SinkBed::Postgres(_) => SinkKind::Postgres,
            SinkBed::Mysql(_) => SinkKind::Mysql,
            SinkBed::Sqlite(_) => SinkKind::Sqlite,
            SinkBed::Files(..) => SinkKind::Files,
            SinkBed::Rabbitmq(_) => SinkKind::Rabbitmq,
        }
    }

    /// The value of the secret `WAREHOUSE_URL` the pipelines' `sink:` refers to, for the
    /// sinks behind a server (a URL with a password is not written into a spec).
    pub fn secret(&self) -> Option<String> {
        match self {
            SinkBed::Postgres(pg) => Some(pg.url()),
            SinkBed::Mysql(db) => Some(db.url()),
            SinkBed::Rabbitmq(node) => Some(node.url()),
            SinkBed::Sqlite(_) | SinkBed::Files(..) => None,
        }
    }

    /// The PostgreSQL server, for what only it can do (`COPY`, killing backends).
    pub fn postgres(&self) -> Option<&TempPostgres> {
        match self {
            SinkBed::Postgres(pg) => Some(pg),
            _ => None,
        }
    }

    /// The YAML flow mapping under `sink:` that loads `table` in `append` mode.
    pub fn yaml(&self, table: &str) -> String {
        match self {
            SinkBed::Postgres(_) => {
                format!(
                    r#"postgres: {{ url: "${{WAREHOUSE_URL}}", table: {table}, mode: append }}"#
                )
            }
            SinkBed::Mysql(_) => {
                format!(r#"mysql: {{ url: "${{WAREHOUSE_URL}}", table: {table}, mode: append }}"#)
            }
            SinkBed::Sqlite(path) => format!(
                r#"sqlite: {{ path: "{}", table: {table}, mode: append }}"#,
                path.display()
            ),
            SinkBed::Files(dir, format) => format!(
                r#"files: {{ url: "{}", table: {table}, format: {} }}"#,
                dir.display(),
                format.extension()
            ),
            SinkBed::Rabbitmq(_) => format!(
                r#"rabbitmq: {{ url: "${{WAREHOUSE_URL}}", exchange: amq.direct, routing_key: {table}, queue: {table} }}"#
            ),
        }
    }

    /// A reader of what the sink holds.
    pub async fn reader(&self) -> anyhow::Result<SinkReader> {
        Ok(match self {
            SinkBed::Postgres(pg) => {
                let options: sqlx::postgres::PgConnectOptions = pg.url().parse()?;
                SinkReader::Postgres(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(2)
                        .acquire_timeout(ACQUIRE)
                        .connect_with(options.application_name(READER_APP_NAME))
                        .await?,
                )
            }
            SinkBed::Mysql(db) => SinkReader::Mysql(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(ACQUIRE)
                    .connect(&db.url())
                    .await?,
            ),
            // Lazily: the first worker creates the file, and until then a read fails.
            SinkBed::Sqlite(path) => SinkReader::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(ACQUIRE)
                    .connect_lazy_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path)),
            ),
            SinkBed::Files(dir, format) => SinkReader::Files(dir.clone(), *format),
            SinkBed::Rabbitmq(node) => SinkReader::Rabbitmq(node.url()),
        })
    }
}

/// The `application_name` of the readers' PostgreSQL connections (the drill's
/// `kill-pg-backend` picks only the workers' own).
pub const READER_APP_NAME: &str = "apitap-chaos-reader";

const ACQUIRE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads back what a [`SinkBed`] holds.
#[derive(Clone)]
pub enum SinkReader {
    Postgres(sqlx::PgPool),
    Mysql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
    Files(PathBuf, FileFormat),
    /// The broker's AMQP URL; a table is a queue.
    Rabbitmq(String),
}

/// Runs `$body` with `$pool` bound to the reader's pool, whichever database it is on, or
/// evaluates `$files` for the files sink.
macro_rules! on_pool {
    ($reader:expr, $pool:ident => $body:expr, $files:pat => $other:expr) => {
        match $reader {
            SinkReader::Postgres($pool) => $body,
            SinkReader::Mysql($pool) => $body,
            SinkReader::Sqlite($pool) => $body,
            $files | SinkReader::Rabbitmq(_) => $other,
        }
    };
}

type Grouped = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

impl SinkReader {
    /// The PostgreSQL pool, for what only PostgreSQL can do (killing backends).
    pub fn postgres(&self) -> Option<&sqlx::PgPool> {
        match self {
            SinkReader::Postgres(pool) => Some(pool),
            _ => None,
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await, SinkReader::Files(..) => ())
    }

    /// The rows of `table`, grouped by id in id order; none when the table (or, for files,
    /// its log) does not exist yet.
    pub async fn id_rows(&self, table: &str) -> anyhow::Result<Vec<IdRows>> {
        if let SinkReader::Files(dir, format) = self {
            return file_id_rows(dir, *format, table).await;
        }
        if let SinkReader::Rabbitmq(url) = self {
            return queue_id_rows(url, table).await;
        }
        if !self.exists(table).await? {
            return Ok(Vec::new());
        }
        let (cast, quote) = match self {
            SinkReader::Mysql(_) => ("CAST(id AS SIGNED)", '`'),
            SinkReader::Sqlite(_) => ("CAST(id AS INTEGER)", '"'),
            _ => ("id::bigint", '"'),
        };
        let user = format!("{quote}userName{quote}");
        let query = format!(
            "SELECT {cast}, COUNT(*), MIN(email), MAX(email), MIN({user}), MAX({user}) \
             FROM {table} GROUP BY {cast} ORDER BY 1"
        );
        let rows: Vec<Grouped> = on_pool!(self,
            pool => sqlx::query_as(&query).fetch_all(pool).await?,
            SinkReader::Files(..) => Vec::new());
        rows.into_iter()
            .map(|r| {
                Ok(IdRows {
                    id: r.0,
                    rows: u64::try_from(r.1)?,
                    email: [r.2, r.3],
                    user_name: [r.4, r.5],
                    message_ids: None,
                })
            })
            .collect()
    }

    /// How many rows `table` holds (for files, the rows the visible parts hold, as their
    /// manifest entries count them).
    pub async fn rows(&self, table: &str) -> anyhow::Result<u64> {
        if let SinkReader::Files(dir, format) = self {
            let parts = files_sink(dir, *format, table)
                .await?
                .visible_parts()
                .await?;
            return Ok(parts.iter().map(|(_, rows)| rows).sum());
        }
        if let SinkReader::Rabbitmq(url) = self {
            return Ok(u64::from(queue_len(url, table).await?));
        }
        let query = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = on_pool!(self,
            pool => sqlx::query(&query).fetch_one(pool).await?.try_get(0)?,
            SinkReader::Files(..) => 0);
        Ok(u64::try_from(n)?)
    }

    /// Every shard's checkpoint the sink holds: the `apitap_checkpoints` table of a SQL
    /// sink, the newest manifest entry of each shard of the files sink.
    pub async fn checkpoints(&self) -> anyhow::Result<Vec<StoredCheckpoint>> {
        if let SinkReader::Files(dir, _) = self {
            return file_checkpoints(dir);
        }
        if let SinkReader::Rabbitmq(_) = self {
            return Ok(Vec::new());
        }
        if !self.exists("apitap_checkpoints").await? {
            return Ok(Vec::new());
        }
        let query = "SELECT pipeline, run_id, shard, fence, records, pages FROM apitap_checkpoints";
        let rows: Vec<(String, i64, i64, i64, i64, i64)> = on_pool!(self,
            pool => sqlx::query_as(query).fetch_all(pool).await?,
            SinkReader::Files(..) => Vec::new());
        Ok(rows
            .into_iter()
            .map(|r| StoredCheckpoint {
                key: (r.0, r.1, r.2),
                fence: r.3,
                records: r.4,
                pages: r.5,
            })
            .collect())
    }

    async fn exists(&self, table: &str) -> anyhow::Result<bool> {
        let query = match self {
            SinkReader::Postgres(_) => "SELECT COUNT(*) FROM pg_tables WHERE tablename = $1",
            SinkReader::Mysql(_) => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = ?"
            }
            SinkReader::Sqlite(_) => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
            }
            SinkReader::Files(dir, _) => return Ok(dir.join(table).exists()),
            SinkReader::Rabbitmq(url) => return Ok(queue_len(url, table).await.is_ok()),
        };
        let n: i64 = on_pool!(self,
            pool => sqlx::query(query).bind(table).fetch_one(pool).await?.try_get(0)?,
            SinkReader::Files(..) => 0);
        Ok(n > 0)
    }
}

/// The files sink's visible rows of `table`, grouped by id (JSON Lines parts only).
async fn file_id_rows(dir: &Path, format: FileFormat, table: &str) -> anyhow::Result<Vec<IdRows>> {
    anyhow::ensure!(
        format == FileFormat::Jsonl,
        "reading back {} parts is not supported; the checker reads JSON Lines",
        format.extension()
    );
    if !dir.join(table).exists() {
        return Ok(Vec::new());
    }
    let parts = files_sink(dir, format, table)
        .await?
        .visible_parts()
        .await?;
    let mut by_id: BTreeMap<i64, IdRows> = BTreeMap::new();
    for (part, _) in parts {
        let text = std::fs::read_to_string(dir.join(&part))?;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let id = v["id"]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("{part}: a row without an integer id"))?;
            add_row(&mut by_id, id, &v);
        }
    }
    Ok(by_id.into_values().collect())
}

/// The messages of the queue `table`, grouped by the `id` of their JSON bodies (no queue
/// yet: none).
async fn queue_id_rows(url: &str, table: &str) -> anyhow::Result<Vec<IdRows>> {
    if queue_len(url, table).await.is_err() {
        return Ok(Vec::new());
    }
    let mut by_id: BTreeMap<i64, IdRows> = BTreeMap::new();
    let mut ids: std::collections::BTreeSet<(i64, String)> = Default::default();
    for m in read_all(url, table).await? {
        let v = &m.body;
        let id = v["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("message {}: no integer id", m.message_id))?;
        add_row(&mut by_id, id, v);
        if ids.insert((id, m.message_id)) {
            if let Some(e) = by_id.get_mut(&id) {
                *e.message_ids.get_or_insert(0) += 1;
            }
        }
    }
    Ok(by_id.into_values().collect())
}

/// Counts row `v` (with `id`) into `by_id`.
fn add_row(by_id: &mut BTreeMap<i64, IdRows>, id: i64, v: &serde_json::Value) {
    let text = |key: &str| v[key].as_str().map(str::to_owned);
    let e = by_id.entry(id).or_insert_with(|| IdRows {
        id,
        rows: 0,
        email: [text("email"), text("email")],
        user_name: [text("userName"), text("userName")],
        message_ids: None,
    });
    e.rows += 1;
    widen(&mut e.email, text("email"));
    widen(&mut e.user_name, text("userName"));
}

/// The files sink over `dir/table`, as a reader opens it.
async fn files_sink(dir: &Path, format: FileFormat, table: &str) -> anyhow::Result<FilesSink> {
    let spec = FilesSpec {
        url: dir.display().to_string(),
        table: table.into(),
        format,
        s3: None,
    };
    Ok(FilesSink::open(&spec, &Egress::default()).await?)
}

/// Keeps `[min, max]` of the values seen, `None` sorting first as in SQL's MIN.
fn widen(range: &mut [Option<String>; 2], v: Option<String>) {
    if v < range[0] {
        range[0] = v.clone();
    }
    if v > range[1] {
        range[1] = v;
    }
}

/// The newest manifest entry (`v-N.json`) of every shard folder under `dir/TABLE/_apitap/`.
fn file_checkpoints(dir: &Path) -> anyhow::Result<Vec<StoredCheckpoint>> {
    let mut out = Vec::new();
    let Ok(tables) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for table in tables {
        let log = table?.path().join("_apitap");
        if log.is_dir() {
            newest_entries(&log, &log, &mut out)?;
        }
    }
    Ok(out)
}

fn newest_entries(root: &Path, dir: &Path, out: &mut Vec<StoredCheckpoint>) -> anyhow::Result<()> {
    let mut newest: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            newest_entries(root, &path, out)?;
            continue;
        }
        let version = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("v-")?.strip_suffix(".json")?.parse().ok());
        if let Some(v) = version {
            if newest.as_ref().is_none_or(|(n, _)| v > *n) {
                newest = Some((v, path));
            }
        }
    }
    let Some((_, path)) = newest else {
        return Ok(());
    };
    // `PIPELINE/run-R/shard-S` below the log's root.
    let rel: Vec<String> = dir
        .strip_prefix(root)?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let [pipeline, run, shard] = rel.as_slice() else {
        return Ok(());
    };
    let number = |s: &str, prefix: &str| s.strip_prefix(prefix).and_then(|n| n.parse().ok());
    let (Some(run), Some(shard)) = (number(run, "run-"), number(shard, "shard-")) else {
        return Ok(());
    };
    let entry: serde_json::Value = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)?,
        // Between listing and reading nothing is removed, but be lenient to a half-copied
        // folder: skip what cannot be read.
        Err(_) => return Ok(()),
    };
    let field = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    out.push(StoredCheckpoint {
        key: (pipeline.clone(), run, shard),
        fence: field(&entry["fence"]),
        records: field(&entry["checkpoint"]["records"]),
        pages: field(&entry["checkpoint"]["pages"]),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use apitap_common::checkpoint::Checkpoint;
    use apitap_worker::sink::ShardRef;
    use apitap_worker::transform::infer::records_to_batch;

    /// Commits `ids` as the only page of `shard` through the real files sink.
    async fn commit(dir: &Path, shard: u32, ids: &[i64]) -> anyhow::Result<()> {
        let spec = FilesSpec {
            url: dir.display().to_string(),
            table: "users".into(),
            format: FileFormat::Jsonl,
            s3: None,
        };
        let mut sink = FilesSink::open(&spec, &Egress::default()).await?;
        let shard = ShardRef {
            pipeline: "p".into(),
            run_id: 7,
            shard,
        };
        sink.claim(&shard, 3).await?;
        let records: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({"id": id, "email": format!("u{id}@x"), "userName": "u"}))
            .collect();
        let batch = records_to_batch(&records, None)?;
        let checkpoint = Checkpoint {
            pages: 1,
            records: ids.len() as u64,
            ..Checkpoint::start()
        };
        sink.commit(&shard, 3, Some(&batch), &checkpoint).await?;
        Ok(())
    }

    #[tokio::test]
    async fn the_files_reader_counts_every_visible_row_per_id_and_reads_the_checkpoints(
    ) -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let bed = SinkBed::start(SinkKind::Files, tmp.path(), FileFormat::Jsonl)?;
        let reader = bed.reader().await?;
        assert!(reader.id_rows("users").await?.is_empty(), "nothing yet");
        let SinkBed::Files(dir, _) = &bed else {
            anyhow::bail!("a files bed");
        };
        commit(dir, 0, &[1, 2]).await?;
        commit(dir, 1, &[2, 3]).await?;
        let rows: Vec<(i64, u64)> = reader
            .id_rows("users")
            .await?
            .iter()
            .map(|r| (r.id, r.rows))
            .collect();
        assert_eq!(rows, vec![(1, 1), (2, 2), (3, 1)]);
        assert_eq!(reader.rows("users").await?, 4);
        let mut checkpoints = reader.checkpoints().await?;
        checkpoints.sort_by_key(|c| c.key.2);
        assert_eq!(checkpoints.len(), 2, "{checkpoints:?}");
        assert_eq!(checkpoints[1].key, ("p".into(), 7, 1));
        assert_eq!((checkpoints[1].fence, checkpoints[1].records), (3, 2));
        Ok(())
    }
}
