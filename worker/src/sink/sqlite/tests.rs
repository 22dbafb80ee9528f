//! The shared suite against a SQLite file in a temporary directory, then what only SQLite
//! does: creating the file's directories and choosing columns by type affinity.

use apitap_common::spec::{LoadMode, SqliteSink as SqliteSpec};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::SqliteSink;
use crate::sink::sql::suite::{batch, expect_pairs, load_page, sql_sink_suite, Fixture, TestDb};
use crate::sink::{AnySink, ShardRef, Sink};

/// The directory of a database file, removed on drop.
struct TempSqlite {
    _dir: tempfile::TempDir,
}

impl Fixture for TempSqlite {
    type D = super::SqliteDialect;
    /// ISO-8601 text.
    const TEMPORAL: (&'static str, (&'static str, &'static str)) = (
        "SELECT \"at\", d FROM times",
        ("2023-11-14T22:13:20", "2024-02-29"),
    );

    async fn fresh() -> TestDb<Self> {
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
        TestDb {
            server: TempSqlite { _dir: dir },
            location: ("sqlite", json!({ "path": path })),
            reader,
        }
    }
}

sql_sink_suite!(TempSqlite);

#[tokio::test]
async fn columns_are_typed_by_affinity() {
    let fx = TempSqlite::fresh().await;
    let page = batch(json!([{"id": 1, "score": 1.5, "ok": true, "name": "a", "tags": ["x"]}]));
    load_page(&fx, "events", LoadMode::Append, &[], &page).await;
    expect_pairs(
        &fx,
        "SELECT name, type FROM pragma_table_info('events') ORDER BY name",
        &[
            ("id", "INTEGER"),
            ("name", "TEXT"),
            ("ok", "INTEGER"),
            ("score", "REAL"),
            ("tags", "TEXT"),
        ],
    )
    .await;
    // Booleans are stored as 0/1.
    let ok = "SELECT CAST(ok AS TEXT), typeof(ok) FROM events";
    expect_pairs(&fx, ok, &[("1", "integer")]).await;
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
