//! The shared suite against a SQLite file in a temporary directory, then what only SQLite
//! does: creating the file's directories and choosing columns by type affinity.

use std::path::PathBuf;

use apitap_common::spec::{LoadMode, SqliteSink as SqliteSpec};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::SqliteSink;
use crate::sink::sql::suite::{open, sql_sink_suite, Fixture};
use crate::sink::{ShardRef, Sink};
use crate::transform::infer::records_to_batch;

/// A database file in a directory that is removed on drop.
struct TempSqlite {
    _dir: tempfile::TempDir,
    path: PathBuf,
    reader: SqlitePool,
}

impl Fixture for TempSqlite {
    type D = super::SqliteDialect;

    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("apitap.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let reader = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("creating the database file");
        Self {
            _dir: dir,
            path,
            reader,
        }
    }

    fn location(&self) -> (&'static str, Value) {
        ("sqlite", json!({ "path": self.path }))
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}

sql_sink_suite!(TempSqlite);

#[tokio::test]
async fn columns_are_typed_by_affinity() {
    let fx = TempSqlite::start().await;
    let mut sink = open(&fx, "events", LoadMode::Append, &[]).await;
    let shard = ShardRef {
        pipeline: "p".into(),
        run_id: 1,
        shard: 0,
    };
    sink.claim(&shard, 1).await.unwrap();
    let records = [json!({"id": 1, "score": 1.5, "ok": true, "name": "a", "tags": ["x"]})];
    let batch = records_to_batch(&records, None).unwrap();
    let done = apitap_common::checkpoint::Checkpoint::start();
    sink.commit(&shard, 1, Some(&batch), &done).await.unwrap();
    let types: Vec<(String, String)> =
        sqlx::query_as("SELECT name, type FROM pragma_table_info('events') ORDER BY name")
            .fetch_all(fx.reader())
            .await
            .unwrap();
    let types: Vec<(&str, &str)> = types.iter().map(|(n, t)| (&n[..], &t[..])).collect();
    assert_eq!(
        types,
        [
            ("id", "INTEGER"),
            ("name", "TEXT"),
            ("ok", "INTEGER"),
            ("score", "REAL"),
            ("tags", "TEXT")
        ]
    );
    let ok: i64 = sqlx::query_scalar("SELECT ok FROM events")
        .fetch_one(fx.reader())
        .await
        .unwrap();
    assert_eq!(ok, 1, "booleans are stored as 0/1");
}

#[tokio::test]
async fn open_creates_the_file_and_its_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/apitap.db");
    let spec: SqliteSpec = serde_json::from_value(json!({"path": path, "table": "t"})).unwrap();
    let mut sink = SqliteSink::open(&spec).await.unwrap();
    let shard = ShardRef {
        pipeline: "p".into(),
        run_id: 1,
        shard: 0,
    };
    sink.claim(&shard, 1).await.unwrap();
    assert!(path.is_file(), "{} was not created", path.display());
}
