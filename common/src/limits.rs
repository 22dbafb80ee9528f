//! Every limit on a pipeline spec, in one place (DESIGN §9 "Limits", docs/operations.md).
//!
//! A spec comes from outside: a person, a script, or anyone holding a token. Each limit
//! bounds what one document can make ApiTap do (parse, allocate, schedule) so that a
//! hostile or mistaken spec is rejected with an error instead of stalling or crashing a
//! process. The defaults suit production and are far above what a real pipeline needs.
//!
//! The constants are the defaults; [`Limits`] carries them and callers that need other
//! values (the coordinator's configuration, tests) override its fields and pass it to
//! [`crate::spec::load_with`] and [`crate::shard::expand_with`].
//!
//! [`MAX_DURATION`] is not a knob: it keeps every duration small enough that the
//! arithmetic done on it later (milliseconds as `u64`, seconds as `i64`) cannot wrap.

use std::fmt;
use std::time::Duration;

/// Largest pipeline document, in bytes. Checked before the text is parsed; apitapctl reads
/// no more than this (plus one byte) from a file.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Most YAML nodes (mappings, sequences, scalars) a document may hold once its aliases are
/// expanded. Bounds "billion laughs" alias bombs: an alias costs one event in the text but
/// every node it repeats when deserialized. The YAML parser counts them as it reads and
/// stops at the first node over (`spec/guard.rs`).
pub const MAX_YAML_NODES: usize = 50_000;

/// Most bytes of scalar text (strings, numbers, keys) a document may hold once its aliases
/// are expanded. Bounds an alias bomb made of a few long strings, which stays under
/// [`MAX_YAML_NODES`] but copies each string once per alias: a document holds at most
/// [`MAX_DOCUMENT_BYTES`] of text, so a spec without aliases never comes near it.
pub const MAX_YAML_SCALAR_BYTES: usize = 1024 * 1024;

/// Deepest nesting of mappings and sequences. The deepest key of a valid spec sits at
/// depth 6 (`spec.source.http.auth.basic.username`).
pub const MAX_NESTING_DEPTH: usize = 32;

/// Most shards one run may have, from `spec.shards` values, ranges or time windows.
/// Every run stores its shards in the replicated state, so this also bounds a Raft entry.
pub const MAX_SHARDS: u64 = 10_000;

/// Longest `spec.source.http.url`, in bytes (before templates and secrets are filled in).
pub const MAX_URL_BYTES: usize = 8 * 1024;

/// Longest `spec.transform.sql`, in bytes.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// Longest single value elsewhere in the spec, in bytes: header and query values, shard
/// values, JSON paths, the cron expression.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// Most entries in `spec.source.http.headers`.
pub const MAX_HEADERS: usize = 64;

/// Most entries in `spec.source.http.query`.
pub const MAX_QUERY_PARAMS: usize = 64;

/// Longest duration anywhere in the spec (`every`, `step`, back-offs, timeouts): ten years.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

// ---------------------------------------------------------------------------------------
// Upstream limits: what an API's responses may make a worker do. The worker enforces them
// (worker/src/fetch, worker/src/sink); the spec carries the per-pipeline knobs.
// ---------------------------------------------------------------------------------------

/// Default largest response body, in bytes (`spec.source.http.max_body_bytes`). A page is
/// parsed into a JSON tree about 9 times its size (worker/tests/page_memory.rs), so this
/// bounds a worker's memory per shard.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

/// Largest value `spec.source.http.max_body_bytes` accepts.
pub const MAX_BODY_BYTES_CEILING: u64 = 1024 * 1024 * 1024;

/// Default largest OAuth2 token response, in bytes (`auth.oauth2.max_response_bytes`): a
/// token response is a few hundred bytes; anything near this is not one.
pub const DEFAULT_MAX_TOKEN_RESPONSE_BYTES: u64 = 64 * 1024;

/// Largest value `auth.oauth2.max_response_bytes` accepts.
pub const MAX_TOKEN_RESPONSE_BYTES_CEILING: u64 = 1024 * 1024;

/// Default consecutive failures that open a host's circuit breaker
/// (`spec.source.http.circuit_breaker.failures`).
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;

/// Largest `circuit_breaker.failures`.
pub const MAX_BREAKER_FAILURES: u32 = 1000;

/// Default time an open circuit breaker refuses requests (`circuit_breaker.open_for`).
pub const DEFAULT_BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);

/// Shortest and longest `circuit_breaker.open_for`.
pub const MIN_BREAKER_OPEN_FOR: Duration = Duration::from_millis(100);
pub const MAX_BREAKER_OPEN_FOR: Duration = Duration::from_secs(3600);

/// Default longest time a shard waits on an open breaker before its lease fails
/// (`circuit_breaker.max_wait`), at most [`MAX_BREAKER_WAIT`].
pub const DEFAULT_BREAKER_MAX_WAIT: Duration = Duration::from_secs(300);
pub const MAX_BREAKER_WAIT: Duration = Duration::from_secs(3600);

/// Most redirects followed for one request (not a knob).
pub const MAX_REDIRECTS: usize = 10;

/// Default pages one shard may fetch (`spec.source.http.limits.max_pages`). A shard over it
/// fails: an API whose pagination never ends cannot hold a worker slot for ever.
pub const DEFAULT_SHARD_MAX_PAGES: u64 = 1_000_000;

/// Default records one shard may fetch (`spec.source.http.limits.max_records`).
pub const DEFAULT_SHARD_MAX_RECORDS: u64 = 100_000_000;

/// Default response bytes one lease of a shard may fetch (`spec.source.http.limits.max_bytes`):
/// 100 GiB.
pub const DEFAULT_SHARD_MAX_BYTES: u64 = 100 * 1024 * 1024 * 1024;

/// Longest `Retry-After` any pipeline obeys, and the default and largest value of
/// `spec.source.http.retry.max_retry_after`. Equal to the coordinator's cluster-wide clamp
/// (`apitap_proto::limits::MAX_RETRY_AFTER_MS`), so a pipeline can only lower it.
pub const MAX_RETRY_AFTER_CEILING: Duration = Duration::from_secs(3600);

/// Default of `spec.incremental.max_future_skew`: how far past the worker's clock a time
/// cursor may lie and still move the watermark. Clocks of APIs drift by seconds; a day
/// covers time zones written wrongly as UTC, not a record dated 9999-12-31.
pub const DEFAULT_MAX_FUTURE_SKEW: Duration = Duration::from_secs(86_400);

/// Default most columns a sink table may have (`spec.sink.<sink>.max_columns`). PostgreSQL
/// stops at 1,600; a table that grows towards it stops every load of the pipeline.
pub const DEFAULT_MAX_TABLE_COLUMNS: usize = 500;

/// Largest value `max_columns` accepts: PostgreSQL's own limit.
pub const MAX_TABLE_COLUMNS_CEILING: usize = 1600;

/// Default most columns one batch may add to a table (`spec.sink.<sink>.max_new_columns`).
pub const DEFAULT_MAX_NEW_COLUMNS: usize = 100;

/// Longest column name, in bytes: PostgreSQL's identifier limit (NAMEDATALEN - 1). Longer
/// names would be truncated silently and could collide; not a knob.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Default of `spec.sink.rabbitmq.confirm_timeout`: how long a commit waits for the
/// broker's publisher confirms before it fails as transient (and is retried).
pub const DEFAULT_RABBITMQ_CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest `confirm_timeout`: a commit holds its page in memory until every confirm is in.
pub const MAX_RABBITMQ_CONFIRM_TIMEOUT: Duration = Duration::from_secs(600);

/// Default of `spec.sink.rabbitmq.max_message_bytes`: the largest message (one row as JSON)
/// the sink publishes; a larger row is the pipeline's to fix (it is dead-lettered).
pub const DEFAULT_RABBITMQ_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;

/// Largest `max_message_bytes`: RabbitMQ's own default `max_message_size` (128 MiB).
pub const RABBITMQ_MAX_MESSAGE_BYTES_CEILING: u64 = 128 * 1024 * 1024;

/// Default of `spec.sink.rabbitmq.checkpoint_retention`: how long the broker keeps the
/// entries of the checkpoint stream (`x-max-age`).
pub const DEFAULT_RABBITMQ_CHECKPOINT_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// Shortest `checkpoint_retention`: a shard's checkpoint must outlive its run's retries.
pub const MIN_RABBITMQ_CHECKPOINT_RETENTION: Duration = Duration::from_secs(3600);

/// Longest AMQP exchange, queue or routing key name, in bytes: the protocol's short string
/// (not a knob).
pub const MAX_AMQP_NAME_BYTES: usize = 255;

/// The limits a spec is checked against; `Limits::default()` holds the constants above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// [`MAX_DOCUMENT_BYTES`]
    pub max_document_bytes: usize,
    /// [`MAX_YAML_NODES`]
    pub max_yaml_nodes: usize,
    /// [`MAX_YAML_SCALAR_BYTES`]
    pub max_yaml_scalar_bytes: usize,
    /// [`MAX_NESTING_DEPTH`]
    pub max_nesting_depth: usize,
    /// [`MAX_SHARDS`]
    pub max_shards: u64,
    /// [`MAX_URL_BYTES`]
    pub max_url_bytes: usize,
    /// [`MAX_SQL_BYTES`]
    pub max_sql_bytes: usize,
    /// [`MAX_VALUE_BYTES`]
    pub max_value_bytes: usize,
    /// [`MAX_HEADERS`]
    pub max_headers: usize,
    /// [`MAX_QUERY_PARAMS`]
    pub max_query_params: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document_bytes: MAX_DOCUMENT_BYTES,
            max_yaml_nodes: MAX_YAML_NODES,
            max_yaml_scalar_bytes: MAX_YAML_SCALAR_BYTES,
            max_nesting_depth: MAX_NESTING_DEPTH,
            max_shards: MAX_SHARDS,
            max_url_bytes: MAX_URL_BYTES,
            max_sql_bytes: MAX_SQL_BYTES,
            max_value_bytes: MAX_VALUE_BYTES,
            max_headers: MAX_HEADERS,
            max_query_params: MAX_QUERY_PARAMS,
        }
    }
}

/// A limit that was exceeded: which one, what was seen, the maximum and how to get under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    /// Name of the limit as in [`Limits`] and docs/operations.md, e.g. `max_shards`.
    pub limit: &'static str,
    /// What was measured, e.g. `the range makes 4000000000 shards`.
    pub seen: String,
    /// The maximum, with its unit, e.g. `10000 shards`.
    pub max: String,
    /// How to fix the spec.
    pub fix: String,
}

impl LimitError {
    pub fn new(
        limit: &'static str,
        seen: impl Into<String>,
        max: impl fmt::Display,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            limit,
            seen: seen.into(),
            max: max.to_string(),
            fix: fix.into(),
        }
    }

    /// The message without the fix (a spec error prints the fix as its hint).
    pub fn message(&self) -> String {
        format!(
            "{}, over the limit {} of {}",
            self.seen, self.limit, self.max
        )
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message(), self.fix)
    }
}

impl std::error::Error for LimitError {}

/// `Err` when `len` (bytes) is above `max`; `what` names the value (`the SQL`).
pub fn check_bytes(
    limit: &'static str,
    what: &str,
    len: usize,
    max: usize,
    fix: &str,
) -> Result<(), LimitError> {
    if len <= max {
        return Ok(());
    }
    Err(LimitError::new(
        limit,
        format!("{what} is {len} bytes"),
        format!("{max} bytes"),
        fix,
    ))
}

/// `Err` when `count` entries are more than `max`; `what` names them (`headers`).
pub fn check_count(
    limit: &'static str,
    what: &str,
    count: usize,
    max: usize,
    fix: &str,
) -> Result<(), LimitError> {
    if count <= max {
        return Ok(());
    }
    Err(LimitError::new(
        limit,
        format!("{count} {what}"),
        format!("{max} {what}"),
        fix,
    ))
}

/// Default most source records one sink transaction covers (`spec.batch.max_records`).
pub const DEFAULT_BATCH_MAX_RECORDS: u64 = 10_000;

/// Largest `spec.batch.max_records`: a batch's pages are held in memory until they commit.
pub const MAX_BATCH_RECORDS: u64 = 1_000_000;

/// Default longest time a batch stays open after its first page (`spec.batch.max_wait`).
pub const DEFAULT_BATCH_MAX_WAIT: Duration = Duration::from_secs(1);

/// Longest `spec.batch.max_wait`: what a batch holds is not visible before it commits.
pub const MAX_BATCH_WAIT: Duration = Duration::from_secs(60);

/// Default pages a shard fetches ahead of the one it transforms and loads
/// (`spec.batch.prefetch_pages`).
pub const DEFAULT_PREFETCH_PAGES: usize = 2;

/// Largest `spec.batch.prefetch_pages`: each page ahead is held in memory.
pub const MAX_PREFETCH_PAGES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_limit_the_value_and_the_maximum() {
        let e = check_count("max_headers", "headers", 65, 64, "send fewer headers").unwrap_err();
        assert_eq!(
            e.to_string(),
            "65 headers, over the limit max_headers of 64 headers; send fewer headers"
        );
        assert!(check_count("max_headers", "headers", 64, 64, "").is_ok());
        let e = check_bytes("max_sql_bytes", "the SQL", 10, 9, "shorten it").unwrap_err();
        assert_eq!(
            e.message(),
            "the SQL is 10 bytes, over the limit max_sql_bytes of 9 bytes"
        );
    }

    #[test]
    fn durations_below_the_maximum_fit_in_milliseconds_and_signed_seconds() {
        assert!(u64::try_from(MAX_DURATION.as_millis()).is_ok());
        assert!(i64::try_from(MAX_DURATION.as_secs()).is_ok());
    }
}
