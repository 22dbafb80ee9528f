//! The embedded SQLite sink: the local default (`sink.sqlite.path`, `apitap.db`).
//!
//! One pooled connection (SQLite has one writer anyway), WAL so readers do not block the
//! writer, and a 5 s busy timeout so several shard runners on one file take turns. Every
//! claim and commit runs in a `BEGIN IMMEDIATE` transaction: the write lock is taken before
//! the fence is read, so no other writer can slip in between the check and the write.
//! SQLite has no COPY; rows go through one prepared `INSERT` (sqlx caches the statement per
//! connection) executed per row inside the transaction, which is fast for SQLite.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use apitap_common::checkpoint::Checkpoint;
use apitap_common::spec::{LoadMode, SqliteSink as SqliteSpec};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions,
};
use sqlx::Sqlite;

use super::checkpoint_sql::{check_fence, parse_checkpoint, sqlite as sql, Key};
use super::columns::ColumnLimits;
use super::dead_letter::sqlite as dead;
use super::error::{classify, to_i64, to_u64, Dialect};
use super::table::{
    base_type, check_batch, json_rows, needed_columns, quote_ident, quote_list, upsert_clause,
    write_columns, Column, TableName, ValueKind,
};
use super::{ShardRef, Sink, SinkError};

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> SinkError {
    move |e| classify(Dialect::Sqlite, what, e)
}

/// Loads into a table of a SQLite database file.
#[derive(Debug)]
pub struct SqliteSink {
    pool: SqlitePool,
    table: TableName,
    mode: LoadMode,
    primary_key: Vec<String>,
    /// The target table's columns as last seen, so DDL is only considered when a batch
    /// brings a new column. `None` until first read, and after any failed commit.
    columns: Option<HashSet<String>>,
    column_limits: ColumnLimits,
}

impl SqliteSink {
    /// Opens (creating if needed) the database file; a relative path is relative to the
    /// worker's working directory. Missing parent directories are created.
    pub async fn open(spec: &SqliteSpec) -> Result<Self, SinkError> {
        let table = TableName::parse(&spec.table)?;
        let path = Path::new(&spec.path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                SinkError::User(format!("creating directory {}: {e}", parent.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            // Keep the one connection: reopening costs, and `:memory:` would lose its data.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(err("opening the SQLite database"))?;
        Ok(Self {
            pool,
            table,
            mode: spec.mode,
            primary_key: spec.primary_key.clone(),
            columns: None,
            column_limits: ColumnLimits::new(spec.max_columns, spec.max_new_columns, false),
        })
    }

    fn key_columns(&self) -> &[String] {
        match self.mode {
            LoadMode::Merge => &self.primary_key,
            LoadMode::Append => &[],
        }
    }

    /// Creates or widens the table and inserts the rows; returns the table's columns.
    async fn write(
        &self,
        conn: &mut SqliteConnection,
        batch: &RecordBatch,
        known: Option<HashSet<String>>,
    ) -> Result<HashSet<String>, SinkError> {
        let schema = batch.schema();
        check_batch(&schema, self.key_columns())?;
        let existing = match known {
            Some(k) if needed_columns(&schema).iter().all(|n| k.contains(*n)) => k,
            _ => self.ensure_table(conn, batch).await?,
        };
        let columns = write_columns(&schema, &existing);
        if columns.is_empty() {
            tracing::warn!(table = %self.table.quoted(), "page has no typed columns; rows skipped");
            return Ok(existing);
        }
        let rows = json_rows(batch, &columns)?;
        let mut insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table.quoted(),
            quote_list(columns.iter().map(|c| c.name.as_str())),
            vec!["?"; columns.len()].join(", ")
        );
        if self.mode == LoadMode::Merge {
            insert.push_str(&upsert_clause(&columns, &self.primary_key));
        }
        for row in &rows {
            let mut q = sqlx::query(&insert);
            for c in &columns {
                q = bind_value(q, c.kind, row.get(&c.name));
            }
            q.execute(&mut *conn).await.map_err(err("inserting rows"))?;
        }
        Ok(existing)
    }

    /// Reads the table's columns; creates the table or adds the missing typed columns.
    async fn ensure_table(
        &self,
        conn: &mut SqliteConnection,
        batch: &RecordBatch,
    ) -> Result<HashSet<String>, SinkError> {
        let schema_name = self.table.schema.as_deref().unwrap_or("main");
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?, ?)")
            .bind(&self.table.name)
            .bind(schema_name)
            .fetch_all(&mut *conn)
            .await
            .map_err(err("reading the table's columns"))?;
        let mut existing: HashSet<String> = names.into_iter().collect();
        let wanted = write_columns(&batch.schema(), &existing);
        let missing: Vec<&Column> = wanted
            .iter()
            .filter(|c| c.data_type != DataType::Null && !existing.contains(&c.name))
            .collect();
        if missing.is_empty() {
            return Ok(existing);
        }
        let new: Vec<&str> = missing.iter().map(|c| c.name.as_str()).collect();
        self.column_limits
            .check(&self.table.quoted(), existing.len(), &new)?;
        if existing.is_empty() {
            let mut defs: Vec<String> = missing
                .iter()
                .map(|c| format!("{} {}", quote_ident(&c.name), sqlite_type(c)))
                .collect();
            if self.mode == LoadMode::Merge {
                defs.push(format!(
                    "PRIMARY KEY ({})",
                    quote_list(self.primary_key.iter().map(String::as_str))
                ));
            }
            let ddl = format!(
                "CREATE TABLE IF NOT EXISTS {} ({})",
                self.table.quoted(),
                defs.join(", ")
            );
            sqlx::query(&ddl)
                .execute(&mut *conn)
                .await
                .map_err(err("creating the table"))?;
        } else {
            for c in &missing {
                let ddl = format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    self.table.quoted(),
                    quote_ident(&c.name),
                    sqlite_type(c)
                );
                sqlx::query(&ddl)
                    .execute(&mut *conn)
                    .await
                    .map_err(err("adding a column"))?;
            }
        }
        existing.extend(missing.iter().map(|c| c.name.clone()));
        Ok(existing)
    }
}

impl Sink for SqliteSink {
    async fn dead_letter(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        page: u64,
        records: &[Value],
        error: &str,
    ) -> Result<(), SinkError> {
        let key = Key::new(shard)?;
        let ours = to_i64("fence", fence)?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err("starting the dead-letter write"))?;
        own_row(&mut tx, &key, ours, fence).await?;
        sqlx::query(dead::CREATE)
            .execute(&mut *tx)
            .await
            .map_err(err("creating apitap_dead_letters"))?;
        sqlx::query(dead::INSERT)
            .bind(key.pipeline)
            .bind(key.run_id)
            .bind(key.shard)
            .bind(to_i64("page", page)?)
            .bind(ours)
            .bind(error)
            .bind(Value::Array(records.to_vec()).to_string())
            .execute(&mut *tx)
            .await
            .map_err(err("writing dead letters"))?;
        tx.commit().await.map_err(err("committing dead letters"))
    }

    async fn claim(&mut self, shard: &ShardRef, fence: u64) -> Result<Checkpoint, SinkError> {
        let key = Key::new(shard)?;
        let ours = to_i64("fence", fence)?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err("starting the claim"))?;
        sqlx::query(sql::CREATE)
            .execute(&mut *tx)
            .await
            .map_err(err("creating apitap_checkpoints"))?;
        sqlx::query(sql::CLAIM)
            .bind(key.pipeline)
            .bind(key.run_id)
            .bind(key.shard)
            .bind(ours)
            .bind(Checkpoint::start().to_json())
            .execute(&mut *tx)
            .await
            .map_err(err("claiming the shard"))?;
        let (stored, text): (i64, String) = sqlx::query_as(sql::READ)
            .bind(key.pipeline)
            .bind(key.run_id)
            .bind(key.shard)
            .fetch_one(&mut *tx)
            .await
            .map_err(err("reading the checkpoint"))?;
        if stored > ours {
            let _ = tx.rollback().await;
            return Err(SinkError::Fenced {
                stored: to_u64(stored),
                ours: fence,
            });
        }
        tx.commit().await.map_err(err("committing the claim"))?;
        parse_checkpoint(&text)
    }

    async fn commit(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        batch: Option<&RecordBatch>,
        checkpoint: &Checkpoint,
    ) -> Result<(), SinkError> {
        let key = Key::new(shard)?;
        let ours = to_i64("fence", fence)?;
        let records = to_i64("records", checkpoint.records)?;
        let pages = to_i64("pages", checkpoint.pages)?;
        // Taken, not borrowed: after any failure the cache stays empty and is re-read.
        let known = self.columns.take();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(err("starting the commit"))?;
        own_row(&mut tx, &key, ours, fence).await?;
        let known = match batch.filter(|b| b.num_rows() > 0) {
            Some(b) => Some(self.write(&mut tx, b, known).await?),
            None => known,
        };
        sqlx::query(sql::UPDATE)
            .bind(checkpoint.to_json())
            .bind(records)
            .bind(pages)
            .bind(ours)
            .bind(key.pipeline)
            .bind(key.run_id)
            .bind(key.shard)
            .execute(&mut *tx)
            .await
            .map_err(err("updating the checkpoint"))?;
        tx.commit().await.map_err(err("committing"))?;
        self.columns = known;
        Ok(())
    }
}

/// SQLite column types by affinity; nested values are stored as JSON text.
fn sqlite_type(c: &Column) -> &'static str {
    if c.kind != ValueKind::Scalar {
        return "TEXT";
    }
    let dt = base_type(&c.data_type);
    if dt.is_integer() || dt == &DataType::Boolean {
        "INTEGER"
    } else if dt.is_floating() {
        "REAL"
    } else if matches!(dt, DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) {
        "NUMERIC"
    } else {
        "TEXT"
    }
}

fn bind_value<'q>(q: Query<'q>, kind: ValueKind, value: Option<&'q Value>) -> Query<'q> {
    match (kind, value) {
        (_, None | Some(Value::Null)) => q.bind(None::<String>),
        (ValueKind::JsonValue, Some(v)) => q.bind(v.to_string()),
        (_, Some(Value::Bool(b))) => q.bind(*b),
        (_, Some(Value::Number(n))) => match n.as_i64() {
            Some(i) => q.bind(i),
            None => q.bind(n.as_f64()),
        },
        (_, Some(Value::String(s))) => q.bind(s.as_str()),
        (_, Some(v)) => q.bind(v.to_string()),
    }
}

/// Checks that `fence` still owns the shard's checkpoint row; the `BEGIN IMMEDIATE`
/// transaction already holds the database's write lock (DESIGN §6, step 2).
async fn own_row(
    conn: &mut sqlx::SqliteConnection,
    key: &Key<'_>,
    ours: i64,
    fence: u64,
) -> Result<(), SinkError> {
    let stored: Option<(i64, String)> = sqlx::query_as(sql::READ)
        .bind(key.pipeline)
        .bind(key.run_id)
        .bind(key.shard)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err("locking the checkpoint"))?;
    check_fence(stored.map(|s| s.0), ours, fence)
}
