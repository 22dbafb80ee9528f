//! The state machine: [`State`] in memory for reads, persisted to RocksDB record by record.
//! The records an apply touched, `last_applied` and the membership go into one write batch.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use rocksdb::{IteratorMode, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use super::store::{cf, write_synced, CF_META, CF_SM};
use super::{NodeId, TypeConfig};
use crate::state::command::{apply, CommandResult, Key};
use crate::state::State;

type StResult<T> = Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, openraft::BasicNode>;

const KEY_APPLIED: &[u8] = b"m/last_applied";
const KEY_MEMBERSHIP: &[u8] = b"m/membership";
const KEY_NEXT_RUN: &[u8] = b"m/next_run_id";
const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// State shared with the API layer, which reads it directly.
#[derive(Debug, Default)]
pub struct Applied {
    pub state: State,
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: Membership,
    /// Snapshots installed from a leader since this process started.
    pub snapshots_installed: u64,
}

impl Applied {
    /// A hash of the applied state; nodes that applied the same log agree on it.
    pub fn digest(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_vec(&self.state)
            .unwrap_or_default()
            .hash(&mut h);
        format!("{:016x}", h.finish())
    }
}

pub type SharedState = Arc<RwLock<Applied>>;

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: Vec<u8>,
}

#[derive(Clone)]
pub struct StateMachine {
    db: Arc<DB>,
    shared: SharedState,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

/// RocksDB writes: (key, value, or None to delete).
type Records = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// The RocksDB records of `key` in the applied state: (key, value or None to delete).
/// A run is stored as its fields under `r/` plus one `s/` record per shard, so that a
/// shard's change rewrites one shard, not the whole run.
fn records(st: &State, key: &Key) -> Result<Records, serde_json::Error> {
    fn one<T: serde::Serialize>(k: String, v: Option<&T>) -> Result<Records, serde_json::Error> {
        Ok(vec![(
            k.into_bytes(),
            v.map(serde_json::to_vec).transpose()?,
        )])
    }
    let shard_key = |run: u64, i: usize| format!("s/{run:020}/{i:010}").into_bytes();
    match key {
        Key::Pipeline(n) => one(format!("p/{n}"), st.pipelines.get(n)),
        Key::Worker(id) => one(format!("w/{id}"), st.workers.get(id)),
        Key::RateLimit(k) => one(format!("l/{k}"), st.rate_limits.get(k)),
        Key::Token(id) => one(format!("t/{id}"), st.tokens.get(id)),
        Key::Audit(seq) => one(format!("a/{seq:020}"), st.audit.get(seq)),
        Key::Run(id) => {
            let run = st.runs.get(id);
            let mut out = one(format!("r/{id:020}"), run.map(|r| r.meta()).as_ref())?;
            for (i, s) in run
                .map(|r| r.shards.as_slice())
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                out.push((shard_key(*id, i), Some(serde_json::to_vec(s)?)));
            }
            Ok(out)
        }
        Key::Shard(id, i) => {
            let run = st.runs.get(id);
            let mut out = one(format!("r/{id:020}"), run.map(|r| r.meta()).as_ref())?;
            let shard = run.and_then(|r| r.shards.get(*i));
            out.push((
                shard_key(*id, *i),
                shard.map(serde_json::to_vec).transpose()?,
            ));
            Ok(out)
        }
        Key::RemovedRun(id, shards) => {
            let mut out: Records = vec![(format!("r/{id:020}").into_bytes(), None)];
            out.extend((0..*shards).map(|i| (shard_key(*id, i), None)));
            Ok(out)
        }
    }
}

impl StateMachine {
    /// Opens the state machine, loading what RocksDB holds.
    pub fn open(db: Arc<DB>) -> StResult<Self> {
        let sm = Self {
            db,
            shared: SharedState::default(),
        };
        let loaded = sm.load()?;
        *sm.shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(sm)
    }

    pub fn shared(&self) -> SharedState {
        self.shared.clone()
    }

    fn cf(&self) -> &rocksdb::ColumnFamily {
        cf(&self.db, CF_SM)
    }

    fn load(&self) -> StResult<Applied> {
        let mut applied = Applied::default();
        for item in self.db.iterator_cf(self.cf(), IteratorMode::Start) {
            let (k, v) = item.map_err(read_err)?;
            let key = String::from_utf8_lossy(&k);
            let st = &mut applied.state;
            match key.split_once('/') {
                Some(("p", _)) => {
                    // Keyed by the record's own `namespace/name`: a record stored under its
                    // bare name (before namespaces were part of the identity) is re-keyed, and
                    // the newer of two copies wins.
                    let p: crate::state::model::PipelineRecord =
                        serde_json::from_slice(&v).map_err(read_err)?;
                    let key = p.key();
                    if st
                        .pipelines
                        .get(&key)
                        .is_none_or(|old| old.version <= p.version)
                    {
                        st.pipelines.insert(key, p);
                    }
                }
                Some(("r", _)) => {
                    let run: crate::state::model::Run =
                        serde_json::from_slice(&v).map_err(read_err)?;
                    st.runs.insert(run.id, run);
                }
                Some(("s", rest)) => {
                    // `s/{run}/{position}`, read after the run's own record (keys sort).
                    let run_id: u64 = rest
                        .split('/')
                        .next()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0);
                    let shard = serde_json::from_slice(&v).map_err(read_err)?;
                    if let Some(run) = st.runs.get_mut(&run_id) {
                        run.shards.push(shard);
                    }
                }
                Some(("w", id)) => {
                    st.workers.insert(
                        id.to_string(),
                        serde_json::from_slice(&v).map_err(read_err)?,
                    );
                }
                Some(("l", key)) => {
                    st.rate_limits.insert(
                        key.to_string(),
                        serde_json::from_slice(&v).map_err(read_err)?,
                    );
                }
                Some(("t", id)) => {
                    st.tokens.insert(
                        id.to_string(),
                        serde_json::from_slice(&v).map_err(read_err)?,
                    );
                }
                Some(("a", _)) => {
                    let r: crate::state::access::AuditRecord =
                        serde_json::from_slice(&v).map_err(read_err)?;
                    st.audit.insert(r.seq, r);
                }
                Some(("m", "last_applied")) => {
                    applied.last_applied = serde_json::from_slice(&v).map_err(read_err)?
                }
                Some(("m", "membership")) => {
                    applied.membership = serde_json::from_slice(&v).map_err(read_err)?
                }
                Some(("m", "next_run_id")) => {
                    st.next_run_id = serde_json::from_slice(&v).map_err(read_err)?
                }
                _ => {}
            }
        }
        Ok(applied)
    }

    /// The touched records and the applied position, as one batch.
    fn persist_batch(&self, a: &Applied, keys: &[Key]) -> StResult<WriteBatch> {
        let mut batch = WriteBatch::default();
        let cf = self.cf();
        for key in keys {
            for (k, v) in records(&a.state, key).map_err(write_err)? {
                match v {
                    Some(v) => batch.put_cf(cf, k, v),
                    None => batch.delete_cf(cf, k),
                }
            }
        }
        self.put_meta_records(&mut batch, a)?;
        Ok(batch)
    }

    fn put_meta_records(&self, batch: &mut WriteBatch, a: &Applied) -> StResult<()> {
        let cf = self.cf();
        batch.put_cf(
            cf,
            KEY_APPLIED,
            serde_json::to_vec(&a.last_applied).map_err(write_err)?,
        );
        batch.put_cf(
            cf,
            KEY_MEMBERSHIP,
            serde_json::to_vec(&a.membership).map_err(write_err)?,
        );
        batch.put_cf(
            cf,
            KEY_NEXT_RUN,
            serde_json::to_vec(&a.state.next_run_id).map_err(write_err)?,
        );
        Ok(())
    }

    /// The batch that replaces everything with `a` (snapshot install).
    fn persist_all_batch(&self, a: &Applied) -> StResult<WriteBatch> {
        let mut batch = WriteBatch::default();
        let cf = self.cf();
        batch.delete_range_cf(cf, b"".as_slice(), b"\xff".as_slice());
        let mut keys: Vec<Key> = a
            .state
            .pipelines
            .keys()
            .cloned()
            .map(Key::Pipeline)
            .collect();
        keys.extend(a.state.runs.keys().map(|id| Key::Run(*id)));
        keys.extend(a.state.workers.keys().cloned().map(Key::Worker));
        keys.extend(a.state.rate_limits.keys().cloned().map(Key::RateLimit));
        keys.extend(a.state.tokens.keys().cloned().map(Key::Token));
        keys.extend(a.state.audit.keys().map(|s| Key::Audit(*s)));
        for key in &keys {
            for (k, v) in records(&a.state, key).map_err(write_err)? {
                if let Some(v) = v {
                    batch.put_cf(cf, k, v);
                }
            }
        }
        self.put_meta_records(&mut batch, a)?;
        Ok(batch)
    }

    fn meta_cf(&self) -> &rocksdb::ColumnFamily {
        cf(&self.db, CF_META)
    }

    fn stored_snapshot(&self) -> StResult<Option<StoredSnapshot>> {
        let meta_cf = self.meta_cf();
        match self.db.get_cf(meta_cf, KEY_SNAPSHOT).map_err(read_err)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(read_err),
        }
    }

    async fn save_snapshot(&self, s: &StoredSnapshot) -> StResult<()> {
        let bytes = serde_json::to_vec(s).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.meta_cf(), KEY_SNAPSHOT, bytes);
        write_synced(&self.db, batch).await.map_err(write_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StResult<Snapshot<TypeConfig>> {
        let (data, last_applied, membership) = {
            let a = self
                .shared
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let data = serde_json::to_vec(&a.state).map_err(read_err)?;
            (data, a.last_applied, a.membership.clone())
        };
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, unique_suffix()),
            None => format!("empty-{}", unique_suffix()),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        self.save_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        })
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> StResult<(Option<LogId<NodeId>>, Membership)> {
        let a = self
            .shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StResult<Vec<CommandResult>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (results, batch) = {
            let mut results = Vec::new();
            let mut touched = Vec::new();
            let mut guard = self
                .shared
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for entry in entries {
                guard.last_applied = Some(entry.log_id);
                match &entry.payload {
                    EntryPayload::Blank => results.push(CommandResult::Done),
                    EntryPayload::Normal(cmd) => {
                        let (result, keys) = apply(&mut guard.state, entry.log_id.index, cmd);
                        touched.extend(keys);
                        results.push(result);
                    }
                    EntryPayload::Membership(m) => {
                        guard.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        results.push(CommandResult::Done);
                    }
                }
            }
            touched.sort();
            touched.dedup();
            // The batch is made under the lock; the fsync runs after it is released, so reads
            // of the state do not wait for the disk. They may see entries not yet persisted in
            // the state machine, which is safe: they are committed in the log.
            (results, self.persist_batch(&guard, &touched)?)
        };
        write_synced(&self.db, batch).await.map_err(write_err)?;
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StResult<()> {
        let data = snapshot.into_inner();
        let state: State = serde_json::from_slice(&data).map_err(read_err)?;
        let installed = self
            .shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .snapshots_installed;
        let applied = Applied {
            state,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            snapshots_installed: installed + 1,
        };
        let batch = self.persist_all_batch(&applied)?;
        write_synced(&self.db, batch).await.map_err(write_err)?;
        self.save_snapshot(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .await?;
        *self
            .shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = applied;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StResult<Option<Snapshot<TypeConfig>>> {
        Ok(self.stored_snapshot()?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// A distinct suffix for snapshot ids.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        apitap_common::time::now_ms(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
