//! The files sink on a local folder and on an S3-compatible server (moto): claim, commit,
//! resume, fencing of a zombie, a lost answer, dead letters, and each format read back.

use std::sync::Arc;

use apitap_chaos::testbed::TempS3;
use apitap_common::checkpoint::Checkpoint;
use apitap_common::spec::{FileFormat, FilesSink as FilesSpec, S3Options};
use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStore;
use serde_json::json;

use super::log::{Entry, ShardLog};
use super::{encode, FilesSink};
use crate::fetch::Egress;
use crate::sink::dead;
use crate::sink::sql::suite::{at, batch, shard, users_page as page};
use crate::sink::SinkError;

fn local(dir: &std::path::Path, format: FileFormat) -> FilesSpec {
    FilesSpec {
        url: format!("file://{}", dir.display()),
        table: "users".into(),
        format,
        s3: None,
    }
}

/// The rows of every visible part, summed.
async fn visible_rows(sink: &FilesSink) -> (usize, u64) {
    let parts = sink.visible_parts().await.unwrap();
    (parts.len(), parts.iter().map(|(_, r)| r).sum())
}

/// The protocol every store must keep: resume, fencing, idempotent re-claim.
async fn claim_commit_resume_and_fencing(spec: &FilesSpec) {
    let egress = Egress::default();
    let open = || FilesSink::open(spec, &egress);
    let s = shard();
    let mut a = open().await.unwrap();
    assert_eq!(a.claim(&s, 1).await.unwrap(), Checkpoint::start());
    a.commit(&s, 1, Some(&page(1, 3)), &at(3, 1, 3))
        .await
        .unwrap();
    a.commit(&s, 1, None, &at(3, 2, 3)).await.unwrap();
    a.commit(&s, 1, Some(&page(4, 2)), &at(5, 3, 5))
        .await
        .unwrap();
    assert_eq!(visible_rows(&a).await, (2, 5));

    // Claiming again with the same fence resumes; a lower fence is refused.
    let mut again = open().await.unwrap();
    assert_eq!(again.claim(&s, 1).await.unwrap(), at(5, 3, 5));
    assert!(matches!(
        again.claim(&s, 0).await,
        Err(SinkError::Fenced { stored: 1, ours: 0 })
    ));

    // A newer lease claims; the old one (a zombie) can no longer make anything visible.
    let mut b = open().await.unwrap();
    assert_eq!(b.claim(&s, 2).await.unwrap(), at(5, 3, 5));
    let zombie = a.commit(&s, 1, Some(&page(6, 4)), &at(9, 4, 9)).await;
    assert!(
        matches!(zombie, Err(SinkError::Fenced { stored: 2, ours: 1 })),
        "{zombie:?}"
    );
    let dead = a
        .dead_letter(&s, 1, dead(4, &[json!({"id": 6})], "bad"))
        .await;
    assert!(matches!(dead, Err(SinkError::Fenced { .. })), "{dead:?}");
    b.commit(&s, 2, Some(&page(6, 4)), &at(9, 4, 9))
        .await
        .unwrap();
    assert_eq!(
        visible_rows(&b).await,
        (3, 9),
        "the zombie's part is an orphan"
    );

    // A commit without a claim is a bug, not data.
    let mut fresh = open().await.unwrap();
    let unclaimed = fresh.commit(&s, 2, None, &at(9, 5, 9)).await;
    assert!(
        matches!(unclaimed, Err(SinkError::Internal(_))),
        "{unclaimed:?}"
    );
}

#[tokio::test]
async fn a_local_folder_keeps_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let spec = local(dir.path(), FileFormat::Parquet);
    claim_commit_resume_and_fencing(&spec).await;
    // Four part files on disk (one the zombie's), three named by manifests.
    let data = dir.path().join("users/p/run-9/shard-2");
    assert_eq!(std::fs::read_dir(data).unwrap().count(), 4);
}

#[tokio::test]
async fn an_s3_bucket_keeps_the_protocol() {
    let s3 = TempS3::start("exports").await.expect("moto_server");
    let spec = FilesSpec {
        url: "s3://exports/warehouse".into(),
        table: "users".into(),
        format: FileFormat::Jsonl,
        s3: Some(S3Options {
            endpoint: Some(s3.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            allow_http: true,
        }),
    };
    claim_commit_resume_and_fencing(&spec).await;
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_not_written_twice() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let root = Path::from("t");
    let s = shard();
    let log = ShardLog::new(store.as_ref(), &root, &s);
    let head = Entry::claim(None, 3).unwrap();
    assert!(log.create(&head).await.unwrap());
    let next = head
        .next(3, at(10, 1, 10), Some(("t/part".into(), 10)))
        .unwrap();
    assert!(log.create(&next).await.unwrap());
    // The retry of the same commit finds its own entry and succeeds without a second one.
    assert_eq!(log.append_after(&head, next.clone()).await.unwrap(), next);
    assert_eq!(log.newest().await.unwrap(), Some(next.clone()));
    // Another commit in the same place is a broken invariant.
    let other = head.next(3, at(20, 2, 20), None).unwrap();
    assert!(matches!(
        log.append_after(&head, other).await,
        Err(SinkError::Internal(_))
    ));
}

#[tokio::test]
async fn dead_letters_are_kept_per_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = FilesSink::open(&local(dir.path(), FileFormat::Csv), &Egress::default())
        .await
        .unwrap();
    let s = shard();
    sink.claim(&s, 1).await.unwrap();
    let records = [json!({"id": 1}), json!({"id": "x"})];
    for _ in 0..2 {
        sink.dead_letter(&s, 1, dead(7, &records, "not a number"))
            .await
            .unwrap();
    }
    let path = dir
        .path()
        .join("users/_apitap/p/run-9/shard-2/dead-letters/page-000000000007-fence-00000000000000000001.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(r#""error":"not a number""#), "{text}");
}

#[test]
fn each_format_reads_back_with_every_row() {
    let b = page(1, 5);
    let parquet = encode::encode(&b, FileFormat::Parquet).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        Bytes::from(parquet),
    )
    .unwrap()
    .build()
    .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 5);

    let jsonl = String::from_utf8(encode::encode(&b, FileFormat::Jsonl).unwrap()).unwrap();
    assert_eq!(jsonl.lines().count(), 5);
    assert!(
        jsonl.lines().next().unwrap().contains(r#""name":"user 1""#),
        "{jsonl}"
    );

    let csv = String::from_utf8(encode::encode(&b, FileFormat::Csv).unwrap()).unwrap();
    assert_eq!(csv.lines().count(), 6, "a header and five rows: {csv}");

    // CSV cannot hold a nested value; the error says what to do.
    let nested = batch(json!([{"id": 1, "tags": ["a", "b"]}]));
    match encode::encode(&nested, FileFormat::Csv) {
        Err(SinkError::User(m)) => assert!(m.contains("format: parquet or jsonl"), "{m}"),
        other => panic!("expected a user error, got {other:?}"),
    }
}

#[test]
fn a_pipeline_name_stays_one_path_segment() {
    let store = object_store::memory::InMemory::new();
    let mut s = shard();
    s.pipeline = "team/../etc".into();
    let log = ShardLog::new(&store, &Path::from("t"), &s);
    let part = log.part_path(1, 2, "csv").to_string();
    assert!(
        part.starts_with("t/team%2F..%2Fetc/run-9/shard-2/"),
        "{part}"
    );
}

#[tokio::test]
async fn an_s3_store_gets_only_the_specs_keys_and_an_allowed_endpoint() {
    let s3 = |endpoint: &str, keys: bool| FilesSpec {
        url: "s3://exports/warehouse".into(),
        table: "users".into(),
        format: FileFormat::Parquet,
        s3: Some(S3Options {
            endpoint: Some(endpoint.into()),
            region: None,
            access_key_id: keys.then(|| "id".into()),
            secret_access_key: keys.then(|| "secret".into()),
            allow_http: true,
        }),
    };
    let refused = |r: Result<FilesSink, SinkError>| match r {
        Err(SinkError::User(m)) => m,
        other => panic!("expected a user error, got {other:?}"),
    };
    // No keys in the spec: the worker's own AWS environment is never used instead.
    let m =
        refused(FilesSink::open(&s3("https://s3.example.com", false), &Egress::default()).await);
    assert!(m.contains("never lends its own AWS credentials"), "{m}");
    // A cloud metadata address is refused before any request.
    let m = refused(FilesSink::open(&s3("http://169.254.169.254", true), &Egress::default()).await);
    assert!(m.contains("egress deny-list"), "{m}");
    // Loopback too, when the worker denies it.
    let deny_loopback = Egress::new(Vec::new(), true);
    let m = refused(FilesSink::open(&s3("http://127.0.0.1:9", true), &deny_loopback).await);
    assert!(m.contains("egress deny-list"), "{m}");
}
