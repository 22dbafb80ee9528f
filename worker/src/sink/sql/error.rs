//! Classifies sqlx errors into [`SinkError`]s: whether a retry can help decides how the
//! shard runner reacts, so the mapping errs towards `Transient` only for failures of the
//! environment (connections, locks, resources), never for data the database rejected.

use super::dialect::Dialect;
use crate::sink::SinkError;

/// `what` says which step failed ("creating the table", …) and prefixes the message.
/// Errors the database returned are classified by the dialect's codes; the driver's own
/// errors the same way for every database.
pub(crate) fn classify<D: Dialect>(what: &str, err: sqlx::Error) -> SinkError {
    let msg = format!("{what}: {err}");
    match &err {
        sqlx::Error::Database(db) => D::classify(db.as_ref(), msg),
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

/// Converts a u64 counter to the BIGINT/INTEGER the checkpoint table stores.
pub(crate) fn to_i64(what: &str, v: u64) -> Result<i64, SinkError> {
    i64::try_from(v).map_err(|_| SinkError::Internal(format!("{what} {v} does not fit in i64")))
}

/// Reads a stored counter back; negative values cannot be written by ApiTap.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
