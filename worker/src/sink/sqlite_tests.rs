use std::path::Path;

use apitap_common::checkpoint::{Checkpoint, Position};
use apitap_common::spec::{LoadMode, SqliteSink as SqliteSpec};
use arrow::record_batch::RecordBatch;
use serde_json::json;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::SqlitePool;

use super::*;
use crate::transform::infer::records_to_batch;

/// id, extra, tags, user, ok.
type Loaded = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn spec(path: &Path, mode: LoadMode, pk: &[&str]) -> SqliteSpec {
    SqliteSpec {
        path: path.to_string_lossy().into_owned(),
        table: "events".into(),
        mode,
        primary_key: pk.iter().map(|s| s.to_string()).collect(),
        max_columns: None,
        max_new_columns: None,
    }
}

fn shard() -> ShardRef {
    ShardRef {
        pipeline: "p".into(),
        run_id: 1,
        shard: 0,
    }
}

fn batch(v: serde_json::Value) -> RecordBatch {
    records_to_batch(v.as_array().unwrap(), None).unwrap()
}

fn at_page(page: u64, pages: u64, records: u64) -> Checkpoint {
    Checkpoint {
        position: Position::Page { page },
        pages,
        records,
        watermark: None,
    }
}

async fn reader(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

async fn count(db: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn claim_commit_then_newer_lease_resumes_and_old_one_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/apitap.db");
    let spec = spec(&path, LoadMode::Append, &[]);

    let mut old = SqliteSink::open(&spec).await.unwrap();
    assert_eq!(old.claim(&shard(), 5).await.unwrap(), Checkpoint::start());
    let cp1 = at_page(2, 1, 2);
    let rows = batch(json!([{"id": 1, "userName": "ann"}, {"id": 2, "userName": "bob"}]));
    old.commit(&shard(), 5, Some(&rows), &cp1).await.unwrap();
    // Claiming again with the same fence is allowed and resumes.
    assert_eq!(old.claim(&shard(), 5).await.unwrap(), cp1);

    let mut new = SqliteSink::open(&spec).await.unwrap();
    assert_eq!(new.claim(&shard(), 7).await.unwrap(), cp1);

    let late = batch(json!([{"id": 3, "userName": "zed"}]));
    let err = old
        .commit(&shard(), 5, Some(&late), &at_page(3, 2, 3))
        .await
        .unwrap_err();
    assert_eq!(err, SinkError::Fenced { stored: 7, ours: 5 });
    assert!(err.is_fenced());
    let err = old.claim(&shard(), 6).await.unwrap_err();
    assert_eq!(err, SinkError::Fenced { stored: 7, ours: 6 });

    let db = reader(&path).await;
    assert_eq!(count(&db).await, 2, "the fenced commit wrote nothing");
    assert_eq!(new.claim(&shard(), 7).await.unwrap(), cp1);

    let cp2 = at_page(3, 2, 3);
    new.commit(&shard(), 7, Some(&late), &cp2).await.unwrap();
    assert_eq!(count(&db).await, 3);
    let (fence, records, pages): (i64, i64, i64) =
        sqlx::query_as("SELECT fence, records, pages FROM apitap_checkpoints")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((fence, records, pages), (7, 3, 2));
    // camelCase column names are kept exactly.
    let names: Vec<String> = sqlx::query_scalar("SELECT \"userName\" FROM events ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(names, ["ann", "bob", "zed"]);
}

#[tokio::test]
async fn empty_page_advances_checkpoint_and_commit_needs_claim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut sink = SqliteSink::open(&spec(&path, LoadMode::Append, &[]))
        .await
        .unwrap();
    let err = sink
        .commit(&shard(), 1, None, &Checkpoint::start())
        .await
        .unwrap_err();
    assert!(!err.is_fenced(), "{err}");

    sink.claim(&shard(), 1).await.unwrap();
    let done = Checkpoint {
        position: Position::Done,
        pages: 1,
        records: 0,
        watermark: None,
    };
    sink.commit(&shard(), 1, None, &done).await.unwrap();
    assert_eq!(sink.claim(&shard(), 2).await.unwrap(), done);
}

#[tokio::test]
async fn merge_mode_upserts_on_the_primary_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let mut sink = SqliteSink::open(&spec(&path, LoadMode::Merge, &["id"]))
        .await
        .unwrap();
    sink.claim(&shard(), 1).await.unwrap();
    let first = batch(json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]));
    sink.commit(&shard(), 1, Some(&first), &at_page(2, 1, 2))
        .await
        .unwrap();
    // The same key twice in a page: the later row wins.
    let second =
        batch(json!([{"id": 1, "name": "c"}, {"id": 3, "name": "d"}, {"id": 1, "name": "e"}]));
    sink.commit(&shard(), 1, Some(&second), &at_page(3, 2, 5))
        .await
        .unwrap();
    let db = reader(&path).await;
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM events ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        rows,
        [
            (1, "e".to_string()),
            (2, "b".to_string()),
            (3, "d".to_string())
        ]
    );

    let no_key = batch(json!([{"name": "x"}]));
    let err = sink
        .commit(&shard(), 1, Some(&no_key), &at_page(4, 3, 6))
        .await
        .unwrap_err();
    assert_eq!(err.class(), apitap_common::error::ErrorClass::User, "{err}");
}

#[tokio::test]
async fn new_columns_are_added_and_nested_values_stored_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut sink = SqliteSink::open(&spec(&path, LoadMode::Append, &[]))
        .await
        .unwrap();
    sink.claim(&shard(), 1).await.unwrap();
    sink.commit(
        &shard(),
        1,
        Some(&batch(json!([{"id": 1, "ghost": null}]))),
        &at_page(2, 1, 1),
    )
    .await
    .unwrap();
    let later =
        batch(json!([{"id": 2, "extra": "x", "tags": ["a"], "user": {"login": "l"}, "ok": true}]));
    sink.commit(&shard(), 1, Some(&later), &at_page(3, 2, 2))
        .await
        .unwrap();

    let db = reader(&path).await;
    let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('events')")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(cols.contains(&"extra".to_string()), "{cols:?}");
    assert!(
        !cols.contains(&"ghost".to_string()),
        "all-null column has no type yet"
    );
    let rows: Vec<Loaded> =
        sqlx::query_as("SELECT id, extra, tags, user, ok FROM events ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(rows[0], (1, None, None, None, None));
    assert_eq!(
        rows[1],
        (
            2,
            Some("x".into()),
            Some("[\"a\"]".into()),
            Some("{\"login\":\"l\"}".into()),
            Some(1)
        )
    );
}

#[tokio::test]
async fn a_page_of_a_thousand_new_keys_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apitap.db");
    let spec = spec(&path, LoadMode::Append, &[]);
    let mut sink = SqliteSink::open(&spec).await.unwrap();
    sink.claim(&shard(), 1).await.unwrap();
    let first = batch(json!([{"id": 1}]));
    sink.commit(&shard(), 1, Some(&first), &at_page(2, 1, 1))
        .await
        .unwrap();

    let mut record = serde_json::Map::new();
    for i in 0..1000 {
        record.insert(format!("key_{i}"), json!(i));
    }
    let hostile = batch(json!([record]));
    let err = sink
        .commit(&shard(), 1, Some(&hostile), &at_page(3, 2, 2))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SinkError::User(_)), "{text}");
    assert!(
        text.contains("max_new_columns") && text.contains("1000 new columns"),
        "{text}"
    );
    // Neither the table nor the checkpoint moved.
    let db = reader(&path).await;
    let columns: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('events')")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(columns, 1);
    assert_eq!(count(&db).await, 1);
    let mut again = SqliteSink::open(&spec).await.unwrap();
    assert_eq!(again.claim(&shard(), 2).await.unwrap(), at_page(2, 1, 1));
}
