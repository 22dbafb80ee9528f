//! Sinks: where transformed rows land, atomically with the shard's checkpoint (DESIGN §6).
//!
//! Every sink implements [`Sink`]. The sink's database holds the authoritative checkpoint
//! in the table `apitap_checkpoints`, keyed by (pipeline, run_id, shard), together with the
//! fence of the lease that last claimed the shard. The protocol for one lease:
//!
//! 1. [`Sink::claim`] once, with the lease's fence: raises the stored fence (or refuses with
//!    [`SinkError::Fenced`] when a newer lease already claimed the shard) and returns the
//!    checkpoint to resume from.
//! 2. For every page, fetch from that checkpoint's position, transform, then
//!    [`Sink::commit`] the rows *and* the checkpoint after the page in one transaction;
//!    only after it returns `Ok` report the checkpoint to the coordinator.
//! 3. On [`SinkError::Fenced`] stop the shard at once: another worker owns it; nothing of
//!    this page was written.
//!
//! A replayed page (crash after fetch, before commit) is fetched again from the last
//! committed position, so each record is committed exactly once.
//!
//! Modules: [`rabbitmq`] publishes one message per row, at least once, with the checkpoint
//! in a stream on the broker (the one sink that is not exactly once); [`files`] writes part files made visible by a per-shard manifest log (exactly
//! once without transactions); [`sql`] is the exactly-once core of the SQL sinks (claim, fenced commit, dead
//! letters, schema evolution), written once over a dialect; [`postgres`] (COPY-based bulk
//! load), [`mysql`] (MySQL and MariaDB) and [`sqlite`] (the embedded default) are its
//! dialects. Each dialect has the same
//! files: `mod.rs` (connecting, error codes), `sql.rs` (the checkpoint and dead-letter
//! statements), `ddl.rs` (column types, catalog look-ups), `load.rs` (how rows get in) and
//! `tests.rs` (the shared suite of `sql/suite.rs` run against it, then its own cases).

pub mod endpoint;
pub mod files;
pub mod local_root;
pub mod mysql;
pub mod postgres;
pub mod rabbitmq;
pub mod sql;
pub mod sqlite;

use std::future::Future;

use apitap_common::checkpoint::Checkpoint;
use apitap_common::error::ErrorClass;
use arrow::record_batch::RecordBatch;

use self::sql::Lease;

pub use files::FilesSink;
pub use local_root::LocalRoot;
pub use mysql::MysqlSink;
pub use postgres::PostgresSink;
pub use rabbitmq::RabbitmqSink;
pub use sql::pools::SinkPools;
pub use sqlite::SqliteSink;

/// Which shard's checkpoint row a call is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShardRef {
    /// The pipeline's name (the caller decides whether it includes the namespace; it must
    /// be the same for every lease of the run).
    pub pipeline: String,
    pub run_id: u64,
    pub shard: u32,
}

/// Why a sink call failed. Nothing of the failed call is committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// A lease with a newer fence owns the shard (or this lease never claimed it): stop
    /// working on the shard and do not retry.
    #[error("fenced out: the sink holds fence {stored}, this lease has fence {ours}")]
    Fenced { stored: u64, ours: u64 },
    /// Bad configuration or data: a wrong URL or password, a missing database, a value the
    /// target column cannot hold, a duplicate key, a missing primary-key column, …
    #[error("sink rejected the data or configuration: {0}")]
    User(String),
    /// Connection or I/O trouble, a lock timeout, a deadlock, a restarting server: retry.
    #[error("sink temporarily unavailable: {0}")]
    Transient(String),
    /// A bug in ApiTap or a broken invariant (e.g. commit before claim).
    #[error("internal sink error: {0}")]
    Internal(String),
}

impl SinkError {
    /// `Fenced` is reported as transient because it is not the shard's fault (the shard
    /// goes on under the newer lease), but retrying *this* lease can never succeed: check
    /// [`SinkError::is_fenced`] before retrying.
    pub fn class(&self) -> ErrorClass {
        match self {
            SinkError::User(_) => ErrorClass::User,
            SinkError::Fenced { .. } | SinkError::Transient(_) => ErrorClass::Transient,
            SinkError::Internal(_) => ErrorClass::Internal,
        }
    }

    pub fn is_fenced(&self) -> bool {
        matches!(self, SinkError::Fenced { .. })
    }
}

/// A transactional sink that stores rows and the shard checkpoint atomically.
///
/// Calls on one value are sequential (`&mut self`); open one sink per shard runner (or
/// serialize access). A failed call leaves nothing behind, so the caller may retry
/// transient errors with the same arguments.
pub trait Sink: Send {
    /// Claim the shard for the lease with `fence`, in one transaction: create the sink's
    /// tables if needed (`apitap_checkpoints` keyed by (pipeline, run_id, shard)), raise the
    /// row's fence to `fence` only if the stored fence is lower (insert the row if absent),
    /// and read the checkpoint to resume from ([`Checkpoint::start`] for a new row).
    /// Claiming again with the same fence is allowed and returns the stored checkpoint.
    /// A stored fence higher than `fence` → [`SinkError::Fenced`].
    fn claim(
        &mut self,
        shard: &ShardRef,
        fence: u64,
    ) -> impl Future<Output = Result<Checkpoint, SinkError>> + Send;

    /// Commit one page, in one transaction: lock the checkpoint row, check its fence is
    /// still `fence` (else roll back and return [`SinkError::Fenced`]), create or widen the
    /// target table from the batch's Arrow schema, write the rows (append, or upsert on the
    /// primary key in merge mode), store `checkpoint` (position, records, pages) with the
    /// fence and the time, commit.
    ///
    /// `batch` `None` (or empty) is a page without rows: only the checkpoint advances.
    /// `checkpoint` carries the shard's cumulative counts; the sink stores them as given.
    fn commit(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        batch: Option<&RecordBatch>,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Keeps the records of `dead` (the raw JSON of a page which could not be transformed
    /// or loaded) in `apitap_dead_letters` with its error, if `fence` still owns the shard.
    /// Idempotent per (shard, page, record position).
    fn dead_letter(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        dead: DeadPage<'_>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A page kept aside instead of loaded: its number in the shard, its raw records, and why.
#[derive(Debug, Clone, Copy)]
pub struct DeadPage<'a> {
    pub page: u64,
    pub records: &'a [serde_json::Value],
    pub error: &'a str,
}

/// A [`DeadPage`], for tests.
#[cfg(test)]
pub(crate) fn dead<'a>(
    page: u64,
    records: &'a [serde_json::Value],
    error: &'a str,
) -> DeadPage<'a> {
    DeadPage {
        page,
        records,
        error,
    }
}

/// The sink a pipeline spec names.
#[derive(Debug)]
pub enum AnySink {
    Postgres(PostgresSink),
    Sqlite(SqliteSink),
    Mysql(MysqlSink),
    Files(FilesSink),
    /// Boxed: the connection and the stream reader make it five times the next largest.
    Rabbitmq(Box<RabbitmqSink>),
}

impl AnySink {
    /// Whether the loader must commit each page on its own rather than a batch of pages in
    /// one call: the RabbitMQ sink names each message by its page, which must not depend
    /// on how pages were batched.
    pub fn commits_pages_alone(&self) -> bool {
        matches!(self, AnySink::Rabbitmq(_))
    }
}

/// `$sql` on the [`SqlSink`](sql::SqlSink) inside `$any`, whichever database it is for (a
/// macro: each variant's sink is of another type), or `$files` on the files or RabbitMQ sink
/// (same method names, other types).
macro_rules! on_sink {
    ($any:expr, $sink:ident => $sql:expr, $f:ident => $files:expr) => {
        match $any {
            AnySink::Postgres($sink) => $sql,
            AnySink::Sqlite($sink) => $sql,
            AnySink::Mysql($sink) => $sql,
            AnySink::Files($f) => $files,
            AnySink::Rabbitmq($f) => $files,
        }
    };
}

impl Sink for AnySink {
    async fn claim(&mut self, shard: &ShardRef, fence: u64) -> Result<Checkpoint, SinkError> {
        on_sink!(self,
            s => s.claim(&Lease::new(shard, fence)?).await,
            f => f.claim(shard, fence).await)
    }

    async fn commit(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        batch: Option<&RecordBatch>,
        checkpoint: &Checkpoint,
    ) -> Result<(), SinkError> {
        on_sink!(self,
            s => s.commit(&Lease::new(shard, fence)?, batch, checkpoint).await,
            f => f.commit(shard, fence, batch, checkpoint).await)
    }

    async fn dead_letter(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        dead: DeadPage<'_>,
    ) -> Result<(), SinkError> {
        on_sink!(self,
            s => s.dead_letter(&Lease::new(shard, fence)?, dead.page, dead.records, dead.error).await,
            f => f.dead_letter(shard, fence, dead).await)
    }
}

/// What a lease's sink may reach: its namespace's folder under the worker's local sink
/// root, and (for an S3 endpoint) what the worker's egress deny-list allows.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    pub namespace: &'a str,
    pub local_root: &'a LocalRoot,
    pub egress: &'a crate::fetch::Egress,
    /// The worker's connection pools, shared by the shards loading into one database.
    pub pools: &'a SinkPools,
}

/// Connects to the sink `spec` names, within `reach`. The spec must have its `${ENV}`
/// secrets substituted already. Exactly one sink must be set (validation guarantees it; a
/// hand-made spec gets a user error).
pub async fn open(
    spec: &apitap_common::spec::Sink,
    reach: Reach<'_>,
) -> Result<AnySink, SinkError> {
    let local = |key: &str, path: &str| reach.local_root.resolve(reach.namespace, key, path);
    let others = [
        spec.postgres.is_some(),
        spec.sqlite.is_some(),
        spec.mysql.is_some(),
        spec.files.is_some(),
    ];
    if let Some(r) = &spec.rabbitmq {
        if others.contains(&true) {
            return Err(not_exactly_one());
        }
        return Ok(AnySink::Rabbitmq(Box::new(
            RabbitmqSink::open(r, reach.egress).await?,
        )));
    }
    match (&spec.postgres, &spec.sqlite, &spec.mysql, &spec.files) {
        (Some(pg), None, None, None) => Ok(AnySink::Postgres(
            PostgresSink::connect(pg, reach.pools).await?,
        )),
        (None, Some(sq), None, None) => {
            let sq = apitap_common::spec::SqliteSink {
                path: utf8(local("sink.sqlite.path", &sq.path)?)?,
                ..sq.clone()
            };
            Ok(AnySink::Sqlite(SqliteSink::open(&sq, reach.pools).await?))
        }
        (None, None, Some(my), None) => {
            Ok(AnySink::Mysql(MysqlSink::connect(my, reach.pools).await?))
        }
        (None, None, None, Some(files)) if files.url.starts_with("s3://") => {
            Ok(AnySink::Files(FilesSink::open(files, reach.egress).await?))
        }
        (None, None, None, Some(files)) => {
            let folder = files.url.strip_prefix("file://").unwrap_or(&files.url);
            let files = apitap_common::spec::FilesSink {
                url: utf8(local("sink.files.url", folder)?)?,
                ..files.clone()
            };
            Ok(AnySink::Files(FilesSink::open(&files, reach.egress).await?))
        }
        _ => Err(not_exactly_one()),
    }
}

fn not_exactly_one() -> SinkError {
    SinkError::User(
        "exactly one of sink.postgres, sink.sqlite, sink.mysql, sink.files and sink.rabbitmq must be set"
            .into(),
    )
}

fn utf8(path: std::path::PathBuf) -> Result<String, SinkError> {
    path.into_os_string()
        .into_string()
        .map_err(|p| SinkError::User(format!("the path {p:?} is not UTF-8")))
}
