//! The embedded SQLite sink, the local default (`sink.sqlite.path`, `apitap.db`): the
//! shared core ([`SqlSink`]) over the SQLite dialect, which loads rows with one prepared
//! `INSERT` per row ([`load`]).
//!
//! One pooled connection (SQLite has one writer anyway), WAL so readers do not block the
//! writer, and a 5 s busy timeout so several shard runners on one file take turns. Every
//! claim and commit runs in a `BEGIN IMMEDIATE` transaction: the write lock is taken before
//! the fence is read, so no other writer can slip in between the check and the write.

mod ddl;
mod load;
mod sql;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use apitap_common::spec::SqliteSink as SqliteSpec;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::sql::dialect::{Dialect, Statements};
use super::sql::pools::{SinkPools, ACQUIRE_TIMEOUT};
use super::sql::{error, target_of, SqlSink};
use super::SinkError;

/// Loads into a table of a SQLite database file.
pub type SqliteSink = SqlSink<SqliteDialect>;

/// SQLite's side of [`SqlSink`].
#[derive(Debug)]
pub struct SqliteDialect;

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> SinkError {
    error::err::<SqliteDialect>(what)
}

impl SqliteSink {
    /// Opens (creating if needed) the database file; a relative path is relative to the
    /// worker's working directory. Missing parent directories are created. The one
    /// connection to the file is shared through `pools` by every shard loading into it.
    pub async fn open(spec: &SqliteSpec, pools: &SinkPools) -> Result<Self, SinkError> {
        let target = target_of!(SqliteDialect, spec)?;
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
        let pool = pools
            .sqlite
            .get(&spec.path, || async {
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    // Keep the one connection: reopening costs, and `:memory:` would lose
                    // its data.
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await
                    .map_err(err("opening the SQLite database"))
            })
            .await?;
        Ok(Self::new(pool, target))
    }
}

impl Dialect for SqliteDialect {
    type Db = sqlx::Sqlite;
    const SQL: Statements = sql::STATEMENTS;
    const BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");
    const TRANSACTIONAL_DDL: bool = true;
    const LIMITS_IDENTIFIERS: bool = false;

    /// By primary result code (<https://www.sqlite.org/rescode.html>); sqlx reports the
    /// extended code, whose low byte is the primary one.
    fn classify(db: &dyn DatabaseError, msg: String) -> SinkError {
        let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
        match code & 0xff {
            // BUSY, LOCKED, NOMEM, IOERR, FULL, PROTOCOL
            5 | 6 | 7 | 10 | 13 | 15 => SinkError::Transient(msg),
            // ERROR (syntax, unknown table/database), READONLY, CANTOPEN, TOOBIG,
            // CONSTRAINT, MISMATCH, AUTH, RANGE, NOTADB
            1 | 8 | 14 | 18 | 19 | 20 | 23 | 25 | 26 => SinkError::User(msg),
            _ => SinkError::Internal(msg),
        }
    }
}
