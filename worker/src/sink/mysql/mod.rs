//! The MySQL/MariaDB sink: the shared core ([`SqlSink`]) over the MySQL dialect, which
//! loads rows with multi-row `INSERT`s ([`load`]).
//!
//! Sessions run with `ANSI_QUOTES` (so identifiers are double-quoted as in the other
//! dialects) and in UTC. MySQL commits the open transaction at every DDL statement, so
//! the core creates tables and columns before the fenced transaction, not inside it
//! (`TRANSACTIONAL_DDL`); the fenced transaction itself (`SELECT … FOR UPDATE` on the
//! checkpoint row, the rows, the checkpoint update) is InnoDB's and atomic.

mod ddl;
mod load;
mod sql;

#[cfg(test)]
mod tests;

use apitap_common::spec::MysqlSink as MysqlSpec;
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions};
use sqlx::{Executor, MySqlPool};

use super::sql::dialect::{Dialect, Statements};
use super::sql::pools::{SinkPools, ACQUIRE_TIMEOUT};
use super::sql::{error, target_of, SqlSink};
use super::SinkError;

/// Loads into a MySQL or MariaDB table (`table` or `database.table`).
pub type MysqlSink = SqlSink<MysqlDialect>;

/// MySQL's side of [`SqlSink`].
#[derive(Debug)]
pub struct MysqlDialect;

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> SinkError {
    error::err::<MysqlDialect>(what)
}

/// Added to the server's `sql_mode` on every connection: identifiers in double quotes.
const SESSION: &str = "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')";

impl MysqlSink {
    /// Connects to `spec.url` (secrets already substituted). A bad URL, password or
    /// database name is a user error; an unreachable server is transient.
    /// The pool of `spec.url` in `pools` is used if this worker has one.
    pub async fn connect(spec: &MysqlSpec, pools: &SinkPools) -> Result<Self, SinkError> {
        let target = target_of!(MysqlDialect, spec)?;
        let pool = pools
            .mysql
            .get(&spec.url, || pool(&spec.url, pools.max_connections))
            .await?;
        Ok(Self::new(pool, target))
    }
}

/// At most `max` connections, each with the sink's session settings. Also the pool tests
/// read back through, so that they see those settings.
pub(crate) async fn pool(url: &str, max: u32) -> Result<MySqlPool, SinkError> {
    let options: MySqlConnectOptions = url.parse().map_err(err("parsing sink.mysql.url"))?;
    MySqlPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _| Box::pin(async move { conn.execute(SESSION).await.map(|_| ()) }))
        .connect_with(options.timezone(Some("+00:00".into())))
        .await
        .map_err(err("connecting to MySQL"))
}

impl Dialect for MysqlDialect {
    type Db = sqlx::MySql;
    const SQL: Statements = sql::STATEMENTS;
    const BEGIN: Option<&'static str> = None;
    const TRANSACTIONAL_DDL: bool = false;
    /// MySQL allows 64 characters; the 63-byte limit is within it.
    const LIMITS_IDENTIFIERS: bool = true;

    /// By error number (<https://mariadb.com/kb/en/mariadb-error-codes/>); the SQLSTATE
    /// of most MySQL errors is the unhelpful `HY000`.
    fn classify(db: &dyn DatabaseError, msg: String) -> SinkError {
        let number = db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map_or(0, |e| e.number());
        match number {
            // too many connections, shutdown in progress, network read/write errors,
            // lock wait timeout, deadlock, query interrupted, connection killed, and the
            // client's lost/refused connection errors
            1040 | 1053 | 1158..=1161 | 1205 | 1213 | 1317 | 1927 | 2002 | 2003 | 2006 | 2013 => {
                SinkError::Transient(msg)
            }
            // bad data (too long, out of range, wrong value, no default), duplicate keys,
            // unknown objects, syntax, privileges, authentication, unknown database, …
            _ => SinkError::User(msg),
        }
    }
}
