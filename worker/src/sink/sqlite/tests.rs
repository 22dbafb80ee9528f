//! The shared suite against a SQLite file in a temporary directory, then what only SQLite
//! does: creating the file's directories and choosing columns by type affinity.

use std::path::PathBuf;

use apitap_common::spec::{LoadMode, SqliteSink as SqliteSpec};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::SqliteSink;
use crate::sink::sql::suite::{
    batch, load_page, owned, pairs, sql_sink_suite, temporal_page, Fixture,
};
use crate::sink::{AnySink, ShardRef, Sink};

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
    let page = batch(json!([{"id": 1, "score": 1.5, "ok": true, "name": "a", "tags": ["x"]}]));
    load_page(&fx, "events", LoadMode::Append, &[], &page).await;
    let types = pairs(
        &fx,
        "SELECT name, type FROM pragma_table_info('events') ORDER BY name",
    )
    .await;
    let want = [
        ("id", "INTEGER"),
        ("name", "TEXT"),
        ("ok", "INTEGER"),
        ("score", "REAL"),
        ("tags", "TEXT"),
    ];
    assert_eq!(types, owned(&want));
    let ok = pairs(&fx, "SELECT CAST(ok AS TEXT), typeof(ok) FROM events").await;
    assert_eq!(ok, owned(&[("1", "integer")]), "booleans are stored as 0/1");
}

#[tokio::test]
async fn timestamps_and_dates_are_iso_text() {
    let fx = TempSqlite::start().await;
    load_page(&fx, "times", LoadMode::Append, &[], &temporal_page().await).await;
    let got = pairs(&fx, "SELECT \"at\", d FROM times").await;
    assert_eq!(got, owned(&[("2023-11-14T22:13:20", "2024-02-29")]));
}

#[tokio::test]
async fn open_creates_the_file_and_its_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/apitap.db");
    let spec: SqliteSpec = serde_json::from_value(json!({"path": path, "table": "t"})).unwrap();
    let mut sink = AnySink::Sqlite(SqliteSink::open(&spec, &Default::default()).await.unwrap());
    let shard = ShardRef {
        pipeline: "p".into(),
        run_id: 1,
        shard: 0,
    };
    sink.claim(&shard, 1).await.unwrap();
    assert!(path.is_file(), "{} was not created", path.display());
}
