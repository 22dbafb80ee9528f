//! The PostgreSQL sink: bulk loads with COPY, checkpoints in `apitap_checkpoints`.
//!
//! A small pool (2 connections: one for the commit in flight, one spare so a broken
//! connection does not stall the shard). Each commit is one transaction on one connection:
//! `SELECT … FOR UPDATE` on the checkpoint row, fence check, DDL if the batch brings new
//! columns ([`ddl`]), COPY into a staging table and insert/merge ([`copy`]), checkpoint
//! update, commit. Naive timestamps are read as UTC (`SET LOCAL TimeZone`).

pub(crate) mod copy;
pub(crate) mod ddl;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::Duration;

use apitap_common::checkpoint::Checkpoint;
use apitap_common::spec::{LoadMode, PostgresSink as PostgresSpec};
use arrow::record_batch::RecordBatch;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::PgConnection;

use super::checkpoint_sql::{check_fence, parse_checkpoint, pg as sql, Key};
use super::columns::ColumnLimits;
use super::dead_letter::pg as dead;
use super::error::{classify, to_i64, to_u64, Dialect};
use super::table::{check_batch, json_rows, write_columns, TableName};
use super::{ShardRef, Sink, SinkError};

pub(crate) fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> SinkError {
    move |e| classify(Dialect::Postgres, what, e)
}

/// Loads into a PostgreSQL table (`table` or `schema.table`).
#[derive(Debug)]
pub struct PostgresSink {
    pool: PgPool,
    table: TableName,
    mode: LoadMode,
    primary_key: Vec<String>,
    /// Whether `apitap_checkpoints` is known to exist (checked once per sink).
    checkpoints_ready: bool,
    /// The target table's columns as last seen; `None` until read and after a failure.
    columns: Option<HashSet<String>>,
    column_limits: ColumnLimits,
}

impl PostgresSink {
    /// Connects to `spec.url` (secrets already substituted). A bad URL, password or
    /// database name is a user error; an unreachable server is transient.
    pub async fn connect(spec: &PostgresSpec) -> Result<Self, SinkError> {
        let table = TableName::parse(&spec.table)?;
        let options: PgConnectOptions =
            spec.url.parse().map_err(err("parsing sink.postgres.url"))?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.application_name("apitap-worker"))
            .await
            .map_err(err("connecting to PostgreSQL"))?;
        Ok(Self {
            pool,
            table,
            mode: spec.mode,
            primary_key: spec.primary_key.clone(),
            checkpoints_ready: false,
            columns: None,
            column_limits: ColumnLimits::new(spec.max_columns, spec.max_new_columns, true),
        })
    }

    fn key_columns(&self) -> &[String] {
        match self.mode {
            LoadMode::Merge => &self.primary_key,
            LoadMode::Append => &[],
        }
    }

    /// DDL if needed, then COPY and insert/merge; returns the table's columns.
    async fn write(
        &self,
        conn: &mut PgConnection,
        batch: &RecordBatch,
        known: Option<HashSet<String>>,
    ) -> Result<HashSet<String>, SinkError> {
        let schema = batch.schema();
        check_batch(&schema, self.key_columns())?;
        let existing = ddl::ensure_table(
            conn,
            &self.table,
            &schema,
            self.key_columns(),
            known,
            &self.column_limits,
        )
        .await?;
        let columns = write_columns(&schema, &existing);
        if columns.is_empty() {
            tracing::warn!(table = %self.table.quoted(), "page has no typed columns; rows skipped");
            return Ok(existing);
        }
        sqlx::query("SET LOCAL TimeZone = 'UTC'")
            .execute(&mut *conn)
            .await
            .map_err(err("setting the time zone"))?;
        let csv = copy::to_csv(&json_rows(batch, &columns)?, &columns);
        copy::load(conn, &self.table, &columns, csv, self.key_columns()).await?;
        Ok(existing)
    }
}

impl Sink for PostgresSink {
    async fn dead_letter(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        page: u64,
        records: &[serde_json::Value],
        error: &str,
    ) -> Result<(), SinkError> {
        let key = Key::new(shard)?;
        let ours = to_i64("fence", fence)?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(err("starting the dead-letter write"))?;
        lock_own_row(&mut tx, &key, ours, fence).await?;
        ddl::lock_ddl(&mut tx).await?;
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
            .bind(serde_json::Value::Array(records.to_vec()).to_string())
            .execute(&mut *tx)
            .await
            .map_err(err("writing dead letters"))?;
        tx.commit().await.map_err(err("committing dead letters"))
    }

    async fn claim(&mut self, shard: &ShardRef, fence: u64) -> Result<Checkpoint, SinkError> {
        let key = Key::new(shard)?;
        let ours = to_i64("fence", fence)?;
        let mut tx = self.pool.begin().await.map_err(err("starting the claim"))?;
        if !self.checkpoints_ready {
            let exists: bool =
                sqlx::query_scalar("SELECT to_regclass('apitap_checkpoints') IS NOT NULL")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(err("looking up apitap_checkpoints"))?;
            if !exists {
                ddl::lock_ddl(&mut tx).await?;
                sqlx::query(sql::CREATE)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("creating apitap_checkpoints"))?;
            }
        }
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
        self.checkpoints_ready = true;
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
            .begin()
            .await
            .map_err(err("starting the commit"))?;
        lock_own_row(&mut tx, &key, ours, fence).await?;
        let known = match batch.filter(|b| b.num_rows() > 0) {
            Some(b) => Some(self.write(&mut tx, b, known).await?),
            None => known,
        };
        sqlx::query(sql::UPDATE)
            .bind(key.pipeline)
            .bind(key.run_id)
            .bind(key.shard)
            .bind(checkpoint.to_json())
            .bind(records)
            .bind(pages)
            .bind(ours)
            .execute(&mut *tx)
            .await
            .map_err(err("updating the checkpoint"))?;
        tx.commit().await.map_err(err("committing"))?;
        self.columns = known;
        Ok(())
    }
}

/// Locks the shard's checkpoint row for the rest of the transaction and checks that
/// `fence` still owns it (DESIGN §6, step 2).
async fn lock_own_row(
    conn: &mut PgConnection,
    key: &Key<'_>,
    ours: i64,
    fence: u64,
) -> Result<(), SinkError> {
    let stored: Option<i64> = sqlx::query_scalar(sql::LOCK)
        .bind(key.pipeline)
        .bind(key.run_id)
        .bind(key.shard)
        .fetch_optional(&mut *conn)
        .await
        .map_err(err("locking the checkpoint"))?;
    check_fence(stored, ours, fence)
}
