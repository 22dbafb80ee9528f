//! openraft's own storage test suite against the RocksDB log store and state machine, and
//! a restart check of the state machine's persistence.

use apitap_coordinator::raft::log_store::LogStore;
use apitap_coordinator::raft::state_machine::StateMachine;
use apitap_coordinator::raft::{store, NodeId, TypeConfig};
use apitap_coordinator::state::command::Command;
use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, StorageError};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = store::open(dir.path()).expect("open rocksdb");
        let sm = StateMachine::open(db.clone())?;
        Ok((dir, LogStore::new(db), sm))
    }
}

#[test]
fn rocksdb_store_passes_the_openraft_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}

#[tokio::test]
async fn applied_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let log_id = LogId::new(CommittedLeaderId::new(3, 1), 7);
    {
        let db = store::open(dir.path()).unwrap();
        let mut sm = StateMachine::open(db).unwrap();
        let entry = Entry::<TypeConfig> {
            log_id,
            payload: EntryPayload::Normal(Command::RegisterWorker {
                id: "w1".into(),
                addr: "10.0.0.1:1".into(),
                slots: 2,
                now_ms: 1,
            }),
        };
        sm.apply(vec![entry]).await.unwrap();
    }
    let db = store::open(dir.path()).unwrap();
    let mut sm = StateMachine::open(db).unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id));
    let shared = sm.shared();
    let guard = shared.read().unwrap();
    assert_eq!(guard.state.workers["w1"].slots, 2);
}
