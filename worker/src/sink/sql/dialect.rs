//! What one SQL database brings to the shared core, in three parts that each dialect
//! implements in its own file: [`Dialect`] (`mod.rs`: its statements for the checkpoint
//! and dead-letter tables, how it opens a writing transaction, how it classifies errors),
//! [`Ddl`] (`ddl.rs`: column types and catalog look-ups) and [`Load`] (`load.rs`: how rows
//! get in). Everything else (the claim, the fenced commit, dead letters, schema evolution
//! and its limits) is the core's, written once in [`super`].

use std::collections::HashSet;
use std::future::Future;

use arrow::record_batch::RecordBatch;
use sqlx::error::DatabaseError;

use super::exec::SqlDb;
use super::table::{Column, TableName};
use crate::sink::SinkError;

/// The statements of the checkpoint and dead-letter tables (DESIGN §6). Each dialect
/// writes them in its own SQL, with its own placeholders, but binds the parameters in the
/// order given here, which is also the order they appear in the text (so that databases
/// with only positional `?` placeholders can follow it).
#[derive(Debug)]
pub(crate) struct Statements {
    /// `CREATE TABLE IF NOT EXISTS apitap_checkpoints (pipeline, run_id, shard, fence,
    /// checkpoint, records, pages, updated_at)` keyed by (pipeline, run_id, shard).
    pub create_checkpoints: &'static str,
    /// Inserts the row, or raises its fence if the stored one is lower (never lowers it).
    /// Parameters: pipeline, run_id, shard, fence, checkpoint JSON.
    pub claim: &'static str,
    /// Reads (fence, checkpoint JSON text). Parameters: pipeline, run_id, shard.
    pub read: &'static str,
    /// Reads the fence and keeps the row locked until the transaction ends, so that a
    /// newer lease's claim waits for the commit in flight and then wins. Parameters:
    /// pipeline, run_id, shard.
    pub lock: &'static str,
    /// Parameters: checkpoint JSON, records, pages, fence, pipeline, run_id, shard.
    pub update: &'static str,
    /// `CREATE TABLE IF NOT EXISTS apitap_dead_letters`, keyed by (pipeline, run_id, shard,
    /// page, ordinal) so that a retried page is kept once.
    pub create_dead_letters: &'static str,
    /// One row per element of a JSON array, numbered from 1, ignoring rows already there.
    /// Parameters: pipeline, run_id, shard, page, fence, error, records as a JSON array.
    pub insert_dead_letters: &'static str,
}

/// The `create_checkpoints` and `create_dead_letters` statements of [`Statements`], written
/// once for every dialect from its column types: `name` (the pipeline name, part of the
/// key), `int` (64-bit integers), `json`, `text` (an error message), `time` (a timestamp)
/// with its `now` default, and `options` after the closing parenthesis (e.g. the engine).
/// Expands to the pair of statements.
#[rustfmt::skip]
macro_rules! ledger_tables {
    { name: $name:literal, int: $int:literal, json: $json:literal, text: $text:literal,
      time: $time:literal, now: $now:literal, options: $options:literal $(,)? } => {
        (
            concat!(
                "CREATE TABLE IF NOT EXISTS apitap_checkpoints (",
                "pipeline ", $name, " NOT NULL, run_id ", $int, " NOT NULL, shard ", $int, " NOT NULL, ",
                "fence ", $int, " NOT NULL, checkpoint ", $json, " NOT NULL, ",
                "records ", $int, " NOT NULL DEFAULT 0, pages ", $int, " NOT NULL DEFAULT 0, ",
                "updated_at ", $time, " NOT NULL DEFAULT ", $now, ", ",
                "PRIMARY KEY (pipeline, run_id, shard))", $options,
            ),
            concat!(
                "CREATE TABLE IF NOT EXISTS apitap_dead_letters (",
                "pipeline ", $name, " NOT NULL, run_id ", $int, " NOT NULL, shard ", $int, " NOT NULL, ",
                "page ", $int, " NOT NULL, ordinal ", $int, " NOT NULL, fence ", $int, " NOT NULL, ",
                "record ", $json, " NOT NULL, error ", $text, " NOT NULL, ",
                "created_at ", $time, " NOT NULL DEFAULT ", $now, ", ",
                "PRIMARY KEY (pipeline, run_id, shard, page, ordinal))", $options,
            ),
        )
    };
}
pub(crate) use ledger_tables;

/// One SQL database's side of the sink. Implemented by zero-sized types; the sink holds
/// the pool and the table's configuration.
pub(crate) trait Dialect: Send + Sync + Sized + std::fmt::Debug + 'static {
    type Db: SqlDb;

    /// The statements of the checkpoint and dead-letter tables.
    const SQL: Statements;

    /// The statement that opens every claim, commit and dead-letter transaction; `None`
    /// for the driver's plain `BEGIN`. SQLite uses `BEGIN IMMEDIATE`, which takes the
    /// database's write lock before the fence is read.
    const BEGIN: Option<&'static str>;

    /// Whether DDL can run inside a transaction and roll back with it (PostgreSQL,
    /// SQLite). Where it cannot (MySQL commits the transaction at every DDL statement), the
    /// core runs the target table's DDL before the fenced transaction instead.
    const TRANSACTIONAL_DDL: bool;

    /// Whether column names are limited to [`apitap_common::limits::MAX_IDENTIFIER_BYTES`]
    /// (PostgreSQL truncates longer ones, and two long keys could then collide).
    const LIMITS_IDENTIFIERS: bool;

    /// Classifies an error the database returned, by its own error codes. `msg` is the
    /// message to carry.
    fn classify(db: &dyn DatabaseError, msg: String) -> SinkError;

    /// For `map_err`: classifies a failure of the step `what` ("creating the table", …),
    /// which prefixes the message ([`super::error::classify`]).
    fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> SinkError {
        move |e| super::error::classify::<Self>(what, e)
    }
}

/// The connection type of a dialect's database.
pub(crate) type Conn<D> = <<D as Dialect>::Db as sqlx::Database>::Connection;

/// A dialect's DDL: what schema evolution (`super::ddl`) asks of the database.
pub(crate) trait Ddl: Dialect {
    /// The column type for a batch column; `key` when it is part of the primary key
    /// (MySQL cannot index an unbounded text column).
    fn column_type(column: &Column, key: bool) -> &'static str;

    /// The statements that add columns (each `"name" TYPE`) to the existing `table`: by
    /// default one `ALTER TABLE` for all of them, `IF NOT EXISTS` (PostgreSQL, MariaDB)
    /// because a column added since the catalog was read is not an error.
    fn add_columns(table: &TableName, definitions: &[String]) -> Vec<String> {
        let adds: Vec<String> = definitions
            .iter()
            .map(|d| format!("ADD COLUMN IF NOT EXISTS {d}"))
            .collect();
        vec![format!(
            "ALTER TABLE {} {}",
            table.quoted(),
            adds.join(", ")
        )]
    }

    /// Serializes ApiTap's DDL in the database until the transaction ends, so that workers
    /// that see a new table or column at once take turns instead of failing on races.
    /// A no-op where the transaction already holds the database's write lock.
    fn lock_ddl(conn: &mut Conn<Self>) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The table's columns, or `None` if the table does not exist.
    fn table_columns(
        conn: &mut Conn<Self>,
        table: &TableName,
    ) -> impl Future<Output = Result<Option<HashSet<String>>, SinkError>> + Send;

    /// Creates the schema of a qualified `table` if the database has schemas and it is
    /// missing; called before the table is created.
    fn create_schema(
        conn: &mut Conn<Self>,
        table: &TableName,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// How a dialect writes the rows of one page.
pub(crate) trait Load: Dialect {
    /// Writes the `columns` of `rows` into `table`: appended when `primary_key` is empty,
    /// else upserted on it, a later row winning over an earlier one with the same key.
    /// Runs inside the commit transaction.
    fn load(
        conn: &mut Conn<Self>,
        table: &TableName,
        columns: &[Column],
        rows: &RecordBatch,
        primary_key: &[String],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}
