//! The PostgreSQL sink: the shared core ([`SqlSink`]) over the PostgreSQL dialect, which
//! bulk-loads with COPY ([`load`]) and keeps its DDL under an advisory lock ([`ddl`]).
//!
//! The pool is shared by every shard of the worker loading into the same database
//! ([`SinkPools`]). The commit's `SELECT … FOR UPDATE` on the
//! checkpoint row makes a newer lease's claim wait for the commit in flight.

mod csv;
mod ddl;
mod load;
mod sql;

#[cfg(test)]
mod tests;

use apitap_common::spec::PostgresSink as PostgresSpec;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sql::dialect::{Dialect, Statements};
use super::sql::pools::{SinkPools, ACQUIRE_TIMEOUT};
use super::sql::{error, target_of, SqlSink};
use super::SinkError;

/// Loads into a PostgreSQL table (`table` or `schema.table`).
pub type PostgresSink = SqlSink<PostgresDialect>;

/// PostgreSQL's side of [`SqlSink`].
#[derive(Debug)]
pub struct PostgresDialect;

fn err(what: &'static str) -> impl FnOnce(sqlx::Error) -> SinkError {
    error::err::<PostgresDialect>(what)
}

impl PostgresSink {
    /// Connects to `spec.url` (secrets already substituted). A bad URL, password or
    /// database name is a user error; an unreachable server is transient. The pool of
    /// `spec.url` in `pools` is used if this worker has one.
    pub async fn connect(spec: &PostgresSpec, pools: &SinkPools) -> Result<Self, SinkError> {
        let target = target_of!(PostgresDialect, spec)?;
        let options: PgConnectOptions =
            spec.url.parse().map_err(err("parsing sink.postgres.url"))?;
        let pool = pools
            .postgres
            .get(&spec.url, || async {
                PgPoolOptions::new()
                    .max_connections(pools.max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options.application_name("apitap-worker"))
                    .await
                    .map_err(err("connecting to PostgreSQL"))
            })
            .await?;
        Ok(Self::new(pool, target))
    }
}

impl Dialect for PostgresDialect {
    type Db = sqlx::Postgres;
    const SQL: Statements = sql::STATEMENTS;
    const BEGIN: Option<&'static str> = None;
    const TRANSACTIONAL_DDL: bool = true;
    const LIMITS_IDENTIFIERS: bool = true;

    /// By SQLSTATE class (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
    fn classify(db: &dyn DatabaseError, msg: String) -> SinkError {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        match code.get(..2).unwrap_or("") {
            // connection, transaction rollback (serialization, deadlock), insufficient
            // resources, object not in prerequisite state (lock not available), operator
            // intervention (shutdown, cancel), system error
            "08" | "40" | "53" | "55" | "57" | "58" => SinkError::Transient(msg),
            // invalid transaction state, internal error: our bug or a broken server
            "25" | "XX" => SinkError::Internal(msg),
            // data exceptions, constraint violations, syntax/undefined objects/privileges,
            // authentication, unknown database, …: the data or the configuration
            _ => SinkError::User(msg),
        }
    }
}
