//! The exactly-once core of the SQL sinks, written once over a [`Dialect`] (DESIGN §6).
//!
//! [`SqlSink`] claims shards, commits pages with their checkpoint under the fence check,
//! keeps dead letters, and evolves the target table; a dialect only says how its database
//! loads rows and spells its SQL. Every claim, commit and dead-letter write is one
//! transaction that first reads the shard's fence with the row locked (or, in SQLite, with
//! the database's write lock already held), so a lease that lost the shard can never write.
//!
//! Modules: `dialect` (what a database brings), `exec` (the few sqlx calls, over any
//! database), `checkpoint` (the row's key and fence check), `ddl` (schema evolution),
//! `columns` (its limits), `table` (names, columns and row values), `error` (sqlx error
//! classification), `pools` (connection pools shared by the shards loading into one
//! database).

mod checkpoint;
pub(crate) mod columns;
mod ddl;
pub(crate) mod dialect;
pub(crate) mod error;
pub(crate) mod exec;
pub mod pools;
pub(crate) mod table;

#[cfg(test)]
pub(crate) mod suite;

use std::collections::HashSet;

use apitap_common::checkpoint::Checkpoint;
use apitap_common::spec::LoadMode;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use sqlx::{Pool, Transaction};

use self::checkpoint::parse_checkpoint;
pub(crate) use self::checkpoint::Lease;
use self::columns::ColumnLimits;
use self::dialect::{Conn, Ddl, Dialect, Load};
use self::error::{classify, err, to_i64, to_u64};
use self::exec::{Param, SqlDb};
use self::table::{check_batch, write_columns, TableName};
use super::SinkError;

/// The target table as the spec configures it (`sink.<database>.*`).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    table: TableName,
    mode: LoadMode,
    /// The merge key (ignored in append mode).
    primary_key: Vec<String>,
    limits: ColumnLimits,
}

/// The [`Target`] of a `sink.<database>` spec for `$dialect`. Every database's spec has
/// the same table fields (`table`, `mode`, `primary_key`, `max_columns`,
/// `max_new_columns`) but no common type to read them through.
macro_rules! target_of {
    ($dialect:ty, $spec:expr) => {{
        let spec = $spec;
        $crate::sink::sql::Target::new::<$dialect>(
            &spec.table,
            spec.mode,
            &spec.primary_key,
            spec.max_columns,
            spec.max_new_columns,
        )
    }};
}
pub(crate) use target_of;

impl Target {
    pub(crate) fn new<D: Dialect>(
        table: &str,
        mode: LoadMode,
        primary_key: &[String],
        max_columns: Option<usize>,
        max_new_columns: Option<usize>,
    ) -> Result<Self, SinkError> {
        Ok(Self {
            table: TableName::parse(table)?,
            mode,
            primary_key: primary_key.to_vec(),
            limits: ColumnLimits::new(max_columns, max_new_columns, D::LIMITS_IDENTIFIERS),
        })
    }

    /// The columns rows are merged on; none in append mode.
    fn key_columns(&self) -> &[String] {
        match self.mode {
            LoadMode::Merge => &self.primary_key,
            LoadMode::Append => &[],
        }
    }
}

/// A transactional sink on one SQL database, for the lease-checked calls of
/// [`Sink`](super::Sink) that [`AnySink`](super::AnySink) hands it.
///
/// Other crates use it as [`PostgresSink`](super::PostgresSink) or
/// [`SqliteSink`](super::SqliteSink); `Dialect` is crate-private on purpose, so that the
/// set of databases (and their exactly-once arguments) stays reviewed here.
#[allow(private_bounds)]
#[derive(Debug)]
pub struct SqlSink<D: Dialect> {
    pool: Pool<D::Db>,
    target: Target,
    /// ApiTap's own tables known to exist (checked once per sink), so that claims and
    /// dead-letter writes do not take the DDL lock.
    own_tables_ready: Vec<OwnTable>,
    /// The target table's columns as last seen, so DDL is only considered when a batch
    /// brings a new column. `None` until first read, and after any failed commit.
    columns: Option<HashSet<String>>,
}

type Tx<D> = Transaction<'static, <D as Dialect>::Db>;

/// ApiTap's own tables in the sink's database, beside the target table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnTable {
    /// `apitap_checkpoints`: each shard's checkpoint and fence.
    Checkpoints,
    /// `apitap_dead_letters`: the records that could not be transformed or loaded.
    DeadLetters,
}

#[allow(private_bounds)]
impl<D: Dialect> SqlSink<D> {
    /// A sink writing to `target` through `pool` (the dialect's constructor opens it).
    pub(crate) fn new(pool: Pool<D::Db>, target: Target) -> Self {
        Self {
            pool,
            target,
            own_tables_ready: Vec::new(),
            columns: None,
        }
    }
}

#[allow(private_bounds)]
impl<D: Ddl + Load> SqlSink<D> {
    async fn begin(&self, what: &'static str) -> Result<Tx<D>, SinkError> {
        match D::BEGIN {
            Some(statement) => self.pool.begin_with(statement).await,
            None => self.pool.begin().await,
        }
        .map_err(err::<D>(what))
    }

    /// Creates one of ApiTap's own tables if it is missing, in a transaction of its own
    /// before the fenced one: DDL would end the transaction in MySQL, and elsewhere it only
    /// keeps the fenced transaction short. Once per table and sink.
    async fn ensure_own_table(&mut self, table: OwnTable) -> Result<(), SinkError> {
        if self.own_tables_ready.contains(&table) {
            return Ok(());
        }
        let (name, create) = match table {
            OwnTable::Checkpoints => ("apitap_checkpoints", D::SQL.create_checkpoints),
            OwnTable::DeadLetters => ("apitap_dead_letters", D::SQL.create_dead_letters),
        };
        let what = || format!("creating {name}");
        let mut tx = self.begin("starting to create a table").await?;
        if D::table_columns(&mut *tx, &TableName::plain(name))
            .await?
            .is_none()
        {
            D::lock_ddl(&mut *tx).await?;
            D::Db::execute(&mut *tx, create, &[])
                .await
                .map_err(|e| classify::<D>(&what(), e))?;
        }
        tx.commit().await.map_err(|e| classify::<D>(&what(), e))?;
        self.own_tables_ready.push(table);
        Ok(())
    }

    /// Schema evolution for databases whose DDL cannot be part of the fenced transaction
    /// (`Dialect::TRANSACTIONAL_DDL` false): the new columns are added first, on their own,
    /// and stay even if the page then fails or is fenced out. The returned columns cover
    /// the batch, so the fenced transaction runs no DDL.
    async fn evolve_first(
        &self,
        batch: &RecordBatch,
        known: Option<HashSet<String>>,
    ) -> Result<Option<HashSet<String>>, SinkError> {
        if D::TRANSACTIONAL_DDL || batch.num_rows() == 0 {
            return Ok(known);
        }
        let schema = batch.schema();
        let key = self.target.key_columns();
        check_batch(&schema, key)?;
        let t = &self.target;
        let mut tx = self.begin("starting the schema change").await?;
        let columns =
            ddl::ensure_table::<D>(&mut *tx, &t.table, &schema, key, known, &t.limits).await?;
        tx.commit()
            .await
            .map_err(err::<D>("committing the schema change"))?;
        Ok(Some(columns))
    }

    /// Creates or widens the table and writes the rows; returns the table's columns.
    async fn write(
        &self,
        conn: &mut Conn<D>,
        batch: &RecordBatch,
        known: Option<HashSet<String>>,
    ) -> Result<HashSet<String>, SinkError> {
        let schema = batch.schema();
        let key = self.target.key_columns();
        check_batch(&schema, key)?;
        let t = &self.target;
        let existing =
            ddl::ensure_table::<D>(conn, &t.table, &schema, key, known, &t.limits).await?;
        let columns = write_columns(&schema, &existing);
        if columns.is_empty() {
            tracing::warn!(table = %t.table.quoted(), "page has no typed columns; rows skipped");
            return Ok(existing);
        }
        D::load(conn, &t.table, &columns, batch, key).await?;
        Ok(existing)
    }
}

/// The calls of [`Sink`](super::Sink), under a lease already checked to fit the database.
#[allow(private_bounds)]
impl<D: Ddl + Load> SqlSink<D> {
    pub(crate) async fn claim(&mut self, lease: &Lease<'_>) -> Result<Checkpoint, SinkError> {
        let Lease { key, ours, fence } = *lease;
        self.ensure_own_table(OwnTable::Checkpoints).await?;
        let mut tx = self.begin("starting the claim").await?;
        let start = Checkpoint::start().to_json();
        let [p, r, s] = key.params();
        let params = [p, r, s, Param::Int(ours), Param::text(&start)];
        D::Db::execute(&mut *tx, D::SQL.claim, &params)
            .await
            .map_err(err::<D>("claiming the shard"))?;
        let (stored, text) = D::Db::fetch_int_text(&mut *tx, D::SQL.read, &key.params())
            .await
            .map_err(err::<D>("reading the checkpoint"))?
            .ok_or_else(|| SinkError::Internal("the claimed checkpoint row is missing".into()))?;
        if stored > ours {
            let _ = tx.rollback().await;
            return Err(SinkError::Fenced {
                stored: to_u64(stored),
                ours: fence,
            });
        }
        tx.commit()
            .await
            .map_err(err::<D>("committing the claim"))?;
        parse_checkpoint(&text)
    }

    pub(crate) async fn commit(
        &mut self,
        lease: &Lease<'_>,
        batch: Option<&RecordBatch>,
        checkpoint: &Checkpoint,
    ) -> Result<(), SinkError> {
        let Lease { key, ours, .. } = *lease;
        let records = to_i64("records", checkpoint.records)?;
        let pages = to_i64("pages", checkpoint.pages)?;
        // Taken, not borrowed: after any failure the cache stays empty and is re-read.
        let known = self.columns.take();
        let known = match batch {
            Some(b) => self.evolve_first(b, known).await?,
            None => known,
        };
        let mut tx = self.begin("starting the commit").await?;
        lock_own_row::<D>(&mut *tx, lease).await?;
        let known = match batch.filter(|b| b.num_rows() > 0) {
            Some(b) => Some(self.write(&mut *tx, b, known).await?),
            None => known,
        };
        let json = checkpoint.to_json();
        let [p, r, s] = key.params();
        let params = [
            Param::text(&json),
            Param::Int(records),
            Param::Int(pages),
            Param::Int(ours),
            p,
            r,
            s,
        ];
        D::Db::execute(&mut *tx, D::SQL.update, &params)
            .await
            .map_err(err::<D>("updating the checkpoint"))?;
        tx.commit().await.map_err(err::<D>("committing"))?;
        self.columns = known;
        Ok(())
    }

    pub(crate) async fn dead_letter(
        &mut self,
        lease: &Lease<'_>,
        page: u64,
        records: &[Value],
        error: &str,
    ) -> Result<(), SinkError> {
        let Lease { key, ours, .. } = *lease;
        let page = to_i64("page", page)?;
        self.ensure_own_table(OwnTable::DeadLetters).await?;
        let mut tx = self.begin("starting the dead-letter write").await?;
        lock_own_row::<D>(&mut *tx, lease).await?;
        let array = Value::Array(records.to_vec()).to_string();
        let [p, r, s] = key.params();
        let params = [
            p,
            r,
            s,
            Param::Int(page),
            Param::Int(ours),
            Param::text(error),
            Param::text(&array),
        ];
        D::Db::execute(&mut *tx, D::SQL.insert_dead_letters, &params)
            .await
            .map_err(err::<D>("writing dead letters"))?;
        tx.commit()
            .await
            .map_err(err::<D>("committing dead letters"))
    }
}

/// Reads the shard's fence with its row locked for the rest of the transaction and checks
/// that `lease` still owns it (DESIGN §6, step 2).
async fn lock_own_row<D: Dialect>(conn: &mut Conn<D>, lease: &Lease<'_>) -> Result<(), SinkError> {
    let stored = D::Db::fetch_int(conn, D::SQL.lock, &lease.key.params())
        .await
        .map_err(err::<D>("locking the checkpoint"))?;
    lease.check(stored)
}
