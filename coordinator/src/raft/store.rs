//! The RocksDB database shared by the log store and the state machine, one column family
//! per concern.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

pub const CF_LOGS: &str = "logs";
pub const CF_META: &str = "meta";
pub const CF_SM: &str = "sm";

pub fn open(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [CF_LOGS, CF_META, CF_SM]
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}

/// Writes that must be durable before they are acknowledged.
/// The column family `name` (one of `CF_*`) of a database [`open`] returned.
#[allow(
    clippy::expect_used,
    reason = "open creates every column family before a store or state machine exists"
)]
pub fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name).expect("open created the column family")
}

pub fn sync_write() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// Writes `batch` durably on a blocking thread: an fsync can take tens of milliseconds on
/// a loaded disk, and on an async worker it would hold up Raft's ticks, heartbeats and the
/// gRPC handlers that share the thread. The caller still waits for the write, so writes
/// stay in order.
pub async fn write_synced(db: &Arc<DB>, batch: WriteBatch) -> Result<(), std::io::Error> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.write_opt(batch, &sync_write()))
        .await
        .map_err(io_err)?
        .map_err(io_err)
}

pub fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
