//! Run against a real server when `APITAP_TEST_PG_URL` is set; skipped otherwise (the
//! cluster tests cover PostgreSQL end to end with a throwaway server).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use apitap_common::checkpoint::{Checkpoint, Position};
use apitap_common::error::ErrorClass;
use apitap_common::spec::{LoadMode, PostgresSink as PostgresSpec};
use arrow::record_batch::RecordBatch;
use serde_json::json;
use sqlx::PgPool;

use super::super::{ShardRef, Sink, SinkError};
use super::PostgresSink;
use crate::transform::infer::records_to_batch;

/// id, userName, score, ok, meta as text.
type Loaded = (i64, String, Option<f64>, Option<bool>, Option<String>);

fn url() -> Option<String> {
    let url = std::env::var("APITAP_TEST_PG_URL").ok();
    if url.is_none() {
        eprintln!("skipped: set APITAP_TEST_PG_URL to run the PostgreSQL sink tests");
    }
    url
}

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn spec(url: &str, table: &str, mode: LoadMode, pk: &[&str]) -> PostgresSpec {
    PostgresSpec {
        url: url.into(),
        table: table.into(),
        mode,
        primary_key: pk.iter().map(|s| s.to_string()).collect(),
        max_columns: None,
        max_new_columns: None,
    }
}

fn shard(pipeline: &str) -> ShardRef {
    ShardRef {
        pipeline: pipeline.into(),
        run_id: 9,
        shard: 2,
    }
}

fn batch(v: serde_json::Value) -> RecordBatch {
    records_to_batch(v.as_array().unwrap(), None).unwrap()
}

fn at(offset: u64, pages: u64, records: u64) -> Checkpoint {
    Checkpoint {
        position: Position::Offset { offset },
        pages,
        records,
        watermark: None,
    }
}

#[tokio::test]
async fn claim_commit_resume_and_fencing() {
    let Some(url) = url() else { return };
    let schema = unique("apitap_s");
    let table = format!("{schema}.userEvents");
    let p = unique("pipe");
    let spec = spec(&url, &table, LoadMode::Append, &[]);
    let db = PgPool::connect(&url).await.unwrap();
    let quoted = format!("\"{schema}\".\"userEvents\"");

    let mut old = PostgresSink::connect(&spec).await.unwrap();
    assert_eq!(
        old.claim(&shard(&p), 10).await.unwrap(),
        Checkpoint::start()
    );
    let cp1 = at(2, 1, 2);
    let rows = batch(json!([
        {"id": 1, "userName": "ann", "score": 1.5, "ok": true, "tags": ["a"], "meta": {"k": "v"}},
        {"id": 2, "userName": "say \"hi\", ok\n", "score": null, "ok": false, "tags": [], "meta": null}
    ]));
    old.commit(&shard(&p), 10, Some(&rows), &cp1).await.unwrap();

    let mut new = PostgresSink::connect(&spec).await.unwrap();
    assert_eq!(new.claim(&shard(&p), 12).await.unwrap(), cp1);

    let late = batch(json!([{"id": 3, "userName": "zed"}]));
    let err = old
        .commit(&shard(&p), 10, Some(&late), &at(3, 2, 3))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SinkError::Fenced {
            stored: 12,
            ours: 10
        }
    );
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {quoted}"))
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 2, "the fenced commit wrote nothing");

    new.commit(&shard(&p), 12, Some(&late), &at(3, 2, 3))
        .await
        .unwrap();
    let got: Vec<Loaded> = sqlx::query_as(&format!(
        "SELECT id, \"userName\", score, ok, meta::text FROM {quoted} ORDER BY id"
    ))
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1, "ann");
    assert_eq!(got[0].2, Some(1.5));
    assert_eq!(got[0].4.as_deref(), Some(r#"{"k": "v"}"#));
    assert_eq!(got[1].1, "say \"hi\", ok\n");
    assert_eq!(got[1].3, Some(false));
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'userEvents' ORDER BY column_name",
    )
    .bind(&schema)
    .fetch_all(&db)
    .await
    .unwrap();
    let ty = |c: &str| types.iter().find(|t| t.0 == c).map(|t| t.1.as_str());
    assert_eq!(ty("id"), Some("bigint"));
    assert_eq!(ty("score"), Some("double precision"));
    assert_eq!(ty("ok"), Some("boolean"));
    assert_eq!(ty("tags"), Some("jsonb"));
    assert_eq!(ty("userName"), Some("text"));

    let (fence, records, pages): (i64, i64, i64) =
        sqlx::query_as("SELECT fence, records, pages FROM apitap_checkpoints WHERE pipeline = $1")
            .bind(&p)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!((fence, records, pages), (12, 3, 2));
}

#[tokio::test]
async fn merge_upserts_and_new_columns_are_added() {
    let Some(url) = url() else { return };
    let table = unique("apitap_merge");
    let p = unique("pipe");
    let db = PgPool::connect(&url).await.unwrap();
    let mut sink = PostgresSink::connect(&spec(&url, &table, LoadMode::Merge, &["id"]))
        .await
        .unwrap();
    sink.claim(&shard(&p), 1).await.unwrap();
    let first = batch(json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]));
    sink.commit(&shard(&p), 1, Some(&first), &at(2, 1, 2))
        .await
        .unwrap();
    let second = batch(json!([
        {"id": 1, "name": "c", "extra": 5},
        {"id": 3, "name": "d"},
        {"id": 1, "name": "e", "extra": 6}
    ]));
    sink.commit(&shard(&p), 1, Some(&second), &at(5, 2, 5))
        .await
        .unwrap();
    sink.commit(&shard(&p), 1, None, &at(5, 3, 5))
        .await
        .unwrap();

    let rows: Vec<(i64, String, Option<i64>)> = sqlx::query_as(&format!(
        "SELECT id, name, extra FROM \"{table}\" ORDER BY id"
    ))
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (1, "e".to_string(), Some(6)),
            (2, "b".to_string(), None),
            (3, "d".to_string(), None)
        ]
    );
    assert_eq!(sink.claim(&shard(&p), 2).await.unwrap(), at(5, 3, 5));
}

#[tokio::test]
async fn bad_data_is_a_user_error_and_rolls_back() {
    let Some(url) = url() else { return };
    let table = unique("apitap_bad");
    let p = unique("pipe");
    let db = PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE TABLE \"{table}\" (id BIGINT NOT NULL)"))
        .execute(&db)
        .await
        .unwrap();
    let mut sink = PostgresSink::connect(&spec(&url, &table, LoadMode::Append, &[]))
        .await
        .unwrap();
    sink.claim(&shard(&p), 1).await.unwrap();
    let bad = batch(json!([{"id": "not a number"}]));
    let err = sink
        .commit(&shard(&p), 1, Some(&bad), &at(1, 1, 1))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::User, "{err}");
    assert_eq!(
        sink.claim(&shard(&p), 1).await.unwrap(),
        Checkpoint::start()
    );
    // The sink still works after the failed transaction.
    let good = batch(json!([{"id": 4}]));
    sink.commit(&shard(&p), 1, Some(&good), &at(1, 1, 1))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn temporal_types_load_as_date_and_timestamptz() {
    let Some(url) = url() else { return };
    let table = unique("apitap_time");
    let p = unique("pipe");
    let db = PgPool::connect(&url).await.unwrap();
    let t = crate::transform::Transformer::new(
        "SELECT id, to_timestamp_seconds(ts) AS at, CAST(day AS DATE) AS d FROM source",
        None,
    );
    let rows = t
        .run(&[json!({"id": 1, "ts": 1_700_000_000, "day": "2024-02-29"})])
        .await
        .unwrap()
        .unwrap();
    let mut sink = PostgresSink::connect(&spec(&url, &table, LoadMode::Append, &[]))
        .await
        .unwrap();
    sink.claim(&shard(&p), 1).await.unwrap();
    sink.commit(&shard(&p), 1, Some(&rows), &at(1, 1, 1))
        .await
        .unwrap();
    let (epoch, d): (f64, String) = sqlx::query_as(&format!(
        "SELECT extract(epoch FROM at)::float8, d::text FROM \"{table}\""
    ))
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(epoch, 1_700_000_000.0);
    assert_eq!(d, "2024-02-29");
}

#[tokio::test]
async fn connection_errors_are_classified() {
    let Some(url) = url() else { return };
    let mut missing_db = url::Url::parse(&url).unwrap();
    missing_db.set_path("/apitap_no_such_database");
    let spec_missing = spec(missing_db.as_str(), "t", LoadMode::Append, &[]);
    match PostgresSink::connect(&spec_missing).await {
        Err(e) => assert_eq!(e.class(), ErrorClass::User, "{e}"),
        Ok(_) => panic!("connected to a missing database"),
    }
    let spec = spec(
        "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
        "t",
        LoadMode::Append,
        &[],
    );
    match PostgresSink::connect(&spec).await {
        Err(e) => assert_eq!(e.class(), ErrorClass::Transient, "{e}"),
        Ok(_) => panic!("connected to port 1"),
    }
}
