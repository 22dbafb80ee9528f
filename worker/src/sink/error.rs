//! Classifies sqlx errors into [`SinkError`]s: whether a retry can help decides how the
//! shard runner reacts, so the mapping errs towards `Transient` only for failures of the
//! environment (connections, locks, resources), never for data the database rejected.

use sqlx::error::DatabaseError;

use super::SinkError;

/// Which database produced an error; their error codes differ.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// `what` says which step failed ("creating the table", …) and prefixes the message.
pub(crate) fn classify(dialect: Dialect, what: &str, err: sqlx::Error) -> SinkError {
    let msg = format!("{what}: {err}");
    match &err {
        sqlx::Error::Database(db) => match dialect {
            Dialect::Postgres => pg_class(db.as_ref(), msg),
            Dialect::Sqlite => sqlite_class(db.as_ref(), msg),
        },
        sqlx::Error::Configuration(_) => SinkError::User(msg),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => SinkError::Transient(msg),
        _ => SinkError::Internal(msg),
    }
}

/// By SQLSTATE class (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn pg_class(db: &dyn DatabaseError, msg: String) -> SinkError {
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

/// By primary result code (<https://www.sqlite.org/rescode.html>); sqlx reports the
/// extended code, whose low byte is the primary one.
fn sqlite_class(db: &dyn DatabaseError, msg: String) -> SinkError {
    let code: i64 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
    match code & 0xff {
        // BUSY, LOCKED, NOMEM, IOERR, FULL, PROTOCOL
        5 | 6 | 7 | 10 | 13 | 15 => SinkError::Transient(msg),
        // ERROR (syntax, unknown table/database), READONLY, CANTOPEN, TOOBIG, CONSTRAINT,
        // MISMATCH, AUTH, RANGE, NOTADB
        1 | 8 | 14 | 18 | 19 | 20 | 23 | 25 | 26 => SinkError::User(msg),
        _ => SinkError::Internal(msg),
    }
}

/// Converts a u64 counter to the BIGINT/INTEGER the checkpoint table stores.
pub(crate) fn to_i64(what: &str, v: u64) -> Result<i64, SinkError> {
    i64::try_from(v).map_err(|_| SinkError::Internal(format!("{what} {v} does not fit in i64")))
}

/// Reads a stored counter back; negative values cannot be written by ApiTap.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
