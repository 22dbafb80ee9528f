//! openraft's own storage test suite against the RocksDB log store and state machine, and
//! a restart check of the state machine's persistence.

use apitap_coordinator::raft::log_store::LogStore;
use apitap_coordinator::raft::state_machine::StateMachine;
use apitap_coordinator::raft::{store, NodeId, TypeConfig};
use apitap_coordinator::state::command::{self, Command};
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
            payload: EntryPayload::Normal(Command::RegisterWorker(command::RegisterWorker {
                id: "w1".into(),
                addr: "10.0.0.1:1".into(),
                slots: 2,
                now_ms: 1,
                max_workers: 0,
            })),
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

#[tokio::test]
async fn runs_and_their_shards_survive_reopening_exactly() {
    use apitap_common::shard::ShardDef;
    use apitap_coordinator::state::command::LeaseGrant;
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<ShardDef> = (0..12)
        .map(|i| ShardDef {
            index: i,
            key: format!("k{i}"),
            vars: Default::default(),
        })
        .collect();
    let cmds = vec![
        Command::PutPipeline(command::PutPipeline {
            name: "p".into(),
            namespace: "default".into(),
            spec_yaml: "spec".into(),
            secrets: Default::default(),
            every_ms: None,
            cron: None,
            max_attempts: 3,
            source_url: String::new(),
            sink: String::new(),
            initial_watermark: None,
            watermark_basis: None,
            rate_limit: Some(("api".into(), 5.0, 2)),
            start_run: Some(shards),
            trace: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            now_ms: 1,
            quota: Default::default(),
        }),
        Command::GrantLeases(command::GrantLeases {
            grants: vec![
                LeaseGrant {
                    run_id: 1,
                    shard: 3,
                    worker: "w".into(),
                    trace: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01".into()),
                },
                LeaseGrant {
                    run_id: 1,
                    shard: 11,
                    worker: "w".into(),
                    trace: None,
                },
            ],
            max_shards_per_namespace: 0,
        }),
        Command::Checkpoint(command::Checkpoint {
            run_id: 1,
            shard: 11,
            fence: 2,
            checkpoint: "{}".into(),
            pages: 4,
            records: 40,
            worker: "w".into(),
        }),
    ];
    let before = {
        let db = store::open(dir.path()).unwrap();
        let mut sm = StateMachine::open(db).unwrap();
        let entries: Vec<Entry<TypeConfig>> = cmds
            .into_iter()
            .enumerate()
            .map(|(i, cmd)| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), i as u64 + 1),
                payload: EntryPayload::Normal(cmd),
            })
            .collect();
        sm.apply(entries).await.unwrap();
        let shared = sm.shared();
        let state = shared.read().unwrap().state.clone();
        state
    };
    assert_eq!(before.runs[&1].shards[11].records, 40);
    let db = store::open(dir.path()).unwrap();
    let sm = StateMachine::open(db).unwrap();
    let after = sm.shared().read().unwrap().state.clone();
    assert_eq!(before, after);
}
