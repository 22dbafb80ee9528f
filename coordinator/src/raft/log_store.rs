//! The Raft log in RocksDB. Appends, truncations and the vote are written with `sync`, so
//! an entry reported durable survives power loss (openraft's RocksDB example does not do
//! this; we do). Every write runs on a blocking thread ([`write_synced`]).

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, OptionalSend, RaftLogId, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use super::store::{cf, write_synced, CF_LOGS, CF_META};
use super::{NodeId, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

type StResult<T> = Result<T, StorageError<NodeId>>;

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn logs(&self) -> &rocksdb::ColumnFamily {
        cf(&self.db, CF_LOGS)
    }

    fn meta(&self) -> &rocksdb::ColumnFamily {
        cf(&self.db, CF_META)
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> StResult<Option<T>> {
        let bytes = self
            .db
            .get_cf(self.meta(), key)
            .map_err(|e| StorageIOError::read(AnyError::new(&e)))?;
        match bytes {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StorageIOError::read(AnyError::new(&e)).into()),
        }
    }

    async fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> StResult<()> {
        let bytes =
            serde_json::to_vec(value).map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.meta(), key, bytes);
        write_synced(&self.db, batch)
            .await
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    /// Index of the last log entry, if any (used by `cluster status`).
    pub fn last_index(&self) -> Option<u64> {
        let mut it = self.db.iterator_cf(self.logs(), IteratorMode::End);
        it.next().and_then(|r| r.ok()).map(|(k, _)| {
            u64::from_be_bytes(k.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]))
        })
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StResult<Vec<Entry<TypeConfig>>> {
        use std::ops::Bound::*;
        let start = match range.start_bound() {
            Included(i) => *i,
            Excluded(i) => i + 1,
            Unbounded => 0,
        };
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            self.logs(),
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for item in it {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
            let index = u64::from_be_bytes(
                key.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or([0; 8]),
            );
            if !range.contains(&index) {
                break;
            }
            let entry: Entry<TypeConfig> = serde_json::from_slice(&value)
                .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StResult<LogState<TypeConfig>> {
        let last_purged: Option<LogId<NodeId>> = self.get_meta(KEY_LAST_PURGED)?;
        let mut it = self.db.iterator_cf(self.logs(), IteratorMode::End);
        let last = match it.next() {
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
                let entry: Entry<TypeConfig> = serde_json::from_slice(&value)
                    .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
                Some(*entry.get_log_id())
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StResult<()> {
        self.put_meta(KEY_VOTE, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> StResult<Option<Vote<NodeId>>> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StResult<()> {
        self.put_meta(KEY_COMMITTED, &committed).await
    }

    async fn read_committed(&mut self) -> StResult<Option<LogId<NodeId>>> {
        Ok(self
            .get_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
            batch.put_cf(self.logs(), index_key(entry.get_log_id().index), bytes);
        }
        let result = write_synced(&self.db, batch).await;
        let io = result.as_ref().map(|_| ()).map_err(super::store::io_err);
        callback.log_io_completed(io);
        result.map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StResult<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.logs(), index_key(log_id.index), index_key(u64::MAX));
        // delete_range excludes the end key.
        batch.delete_cf(self.logs(), index_key(u64::MAX));
        write_synced(&self.db, batch)
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StResult<()> {
        self.put_meta(KEY_LAST_PURGED, &log_id).await?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.logs(), index_key(0), index_key(log_id.index + 1));
        write_synced(&self.db, batch)
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
