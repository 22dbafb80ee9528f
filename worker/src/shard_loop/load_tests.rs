//! The loader against a real SQLite file, fed pages through its channel as the prefetcher
//! feeds them: batches close by size and by time, and a batch that cannot commit leaves
//! nothing of itself behind.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apitap_common::checkpoint::Position;
use serde_json::{json, Value};
use sqlx::sqlite::SqlitePool;
use sqlx::Row;

use super::*;
use crate::fetch::{Egress, TokenCache};
use crate::metrics::Metrics;

struct Bench {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    work: LeaseWork,
}

impl Bench {
    fn new(batch: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apitap.db");
        let yaml = format!(
            r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: items }}
spec:
  source:
    http:
      url: "http://127.0.0.1:9/items"
  sink:
    sqlite: {{ path: "{}", table: events }}
  batch: {batch}
"#,
            path.display()
        );
        let pipeline = apitap_common::spec::load("p.yaml", &yaml, None).unwrap();
        let work = LeaseWork {
            run_id: 9,
            shard: 2,
            fence: 5,
            shard_key: String::new(),
            pipeline,
            vars: BTreeMap::new(),
            worker: "w".into(),
            metrics: Arc::new(Metrics::new()),
            budget: None,
            traceparent: None,
            egress: Arc::new(Egress::default()),
            tokens: Arc::new(TokenCache::default()),
            transform_limits: Default::default(),
            local_root: Default::default(),
            breaker_wait: Default::default(),
            pools: Default::default(),
            batch_memory: Default::default(),
        };
        Self {
            _dir: dir,
            path,
            work,
        }
    }

    fn shard(&self) -> ShardRef {
        ShardRef {
            pipeline: "items".into(),
            run_id: 9,
            shard: 2,
        }
    }

    /// A sink on the bench's file with the shard claimed under `fence`.
    async fn claimed(&self, fence: u64) -> AnySink {
        let mut sink = crate::sink::open(&self.work.pipeline.spec.sink, self.work.sink_reach())
            .await
            .unwrap();
        sink.claim(&self.shard(), fence).await.unwrap();
        sink
    }

    async fn reader(&self) -> SqlitePool {
        SqlitePool::connect(&format!("sqlite://{}?mode=rwc", self.path.display()))
            .await
            .unwrap()
    }

    /// Runs a loader over a claimed sink while `feed` sends it pages; returns its outcome
    /// and the checkpoints it reported.
    async fn load<F, Fut>(&self, feed: F) -> (Outcome, Vec<Checkpoint>)
    where
        F: FnOnce(mpsc::Sender<Ahead>, watch::Sender<bool>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut sink = self.claimed(self.work.fence).await;
        let transformer = Transformer::new(self.work.pipeline.sql(), None);
        let reported = Mutex::new(Vec::new());
        let (pages, rx) = mpsc::channel(4);
        let (stop, stopped) = watch::channel(false);
        let loader = Loader {
            work: &self.work,
            shard: &self.shard(),
            sink: &mut sink,
            transformer: &transformer,
            limits: self.work.pipeline.spec.batch.clone(),
            progress: |cp: &Checkpoint| reported.lock().unwrap().push(cp.clone()),
            committed: Checkpoint::start(),
            pending: Pending::new(self.work.batch_memory.clone()),
            last_report: None,
        };
        let (outcome, ()) = tokio::join!(loader.run(rx, stopped), feed(pages, stop));
        (outcome, reported.into_inner().unwrap())
    }
}

/// A page of `n` records with ids from `first`; `last` ends the shard.
fn page(first: i64, n: i64, last: bool) -> Ahead {
    let records: Vec<Value> = (first..first + n)
        .map(|id| json!({"id": id, "name": format!("n{id}")}))
        .collect();
    Ok(Page {
        records,
        next: if last {
            Position::Done
        } else {
            Position::Offset {
                offset: (first + n) as u64,
            }
        },
        bytes: 0,
        status: 200,
        attempts: 1,
        validators: None,
    })
}

/// The stored checkpoint's (pages, records) and the table's row count.
async fn stored(pool: &SqlitePool) -> (i64, i64, i64) {
    let cp = sqlx::query("SELECT pages, records FROM apitap_checkpoints")
        .fetch_one(pool)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT COUNT(*) FROM events")
        .fetch_one(pool)
        .await
        .map(|r| r.get::<i64, _>(0))
        .unwrap_or(0);
    (cp.get(0), cp.get(1), rows)
}

/// Waits (at most 10 s) until the stored checkpoint counts `pages` pages.
async fn until_committed(pool: &SqlitePool, pages: i64) -> (i64, i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = stored(pool).await;
        if now.0 >= pages || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_batch_commits_its_pages_together_once_it_holds_max_records() {
    let bench = Bench::new("{ max_records: 20, max_wait: 60s }");
    let pool = bench.reader().await;
    let db = &pool;
    let (outcome, reported) = bench
        .load(|pages, _stop| async move {
            pages.send(page(1, 10, false)).await.unwrap();
            pages.send(page(11, 10, false)).await.unwrap();
            // 20 records: the batch commits, both pages in one transaction.
            assert_eq!(until_committed(db, 2).await, (2, 20, 20));
            pages.send(page(21, 5, false)).await.unwrap();
            pages.send(page(26, 5, true)).await.unwrap();
        })
        .await;
    assert!(
        matches!(&outcome, Outcome::Done(cp) if cp.records == 30),
        "{outcome:?}"
    );
    assert_eq!(stored(&pool).await, (4, 30, 30));
    assert_eq!(bench.work.metrics.records_loaded.get(), 30);
    let pages: Vec<u64> = reported.iter().map(|c| c.pages).collect();
    assert_eq!(pages, [2, 4], "only committed checkpoints are reported");
}

#[tokio::test]
async fn a_batch_commits_after_max_wait_however_few_records_it_holds() {
    let bench = Bench::new("{ max_records: 1000, max_wait: 100ms }");
    let pool = bench.reader().await;
    let db = &pool;
    let (outcome, _) = bench
        .load(|pages, _stop| async move {
            pages.send(page(1, 3, false)).await.unwrap();
            // No more pages come and the batch is far from full: only max_wait commits it.
            assert_eq!(until_committed(db, 1).await, (1, 3, 3));
            pages.send(page(4, 3, true)).await.unwrap();
        })
        .await;
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    assert_eq!(stored(&pool).await, (2, 6, 6));
}

#[tokio::test]
async fn past_the_workers_batch_memory_every_page_commits_at_once() {
    let mut bench = Bench::new("{ max_records: 1000, max_wait: 60s }");
    // Another shard's open batch already holds the worker's whole budget.
    bench.work.batch_memory = Arc::new(crate::batch_memory::BatchMemory::new(50));
    bench.work.batch_memory.hold(50);
    let pool = bench.reader().await;
    let db = &pool;
    let (outcome, _) = bench
        .load(|pages, _stop| async move {
            pages.send(page(1, 10, false)).await.unwrap();
            // Far from max_records and max_wait: only the worker's budget commits it.
            assert_eq!(until_committed(db, 1).await, (1, 10, 10));
            pages.send(page(11, 10, true)).await.unwrap();
        })
        .await;
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    assert_eq!(stored(&pool).await, (2, 20, 20));
    assert_eq!(
        bench.work.batch_memory.held(),
        50,
        "the loader gave back what its batches held"
    );
}

#[tokio::test]
async fn a_fenced_out_batch_leaves_no_rows_and_the_checkpoint_unchanged() {
    let bench = Bench::new("{ max_records: 30, max_wait: 60s }");
    let newer = &bench;
    let pool = bench.reader().await;
    let (outcome, reported) = bench
        .load(|pages, _stop| async move {
            pages.send(page(1, 10, false)).await.unwrap();
            pages.send(page(11, 10, false)).await.unwrap();
            // A newer lease claims the shard while the batch is open.
            newer.claimed(newer.work.fence + 1).await;
            pages.send(page(21, 10, false)).await.unwrap();
        })
        .await;
    assert!(
        matches!(outcome, Outcome::Fenced { stored: 6 }),
        "{outcome:?}"
    );
    assert_eq!(stored(&pool).await, (0, 0, 0), "nothing of the batch");
    assert!(reported.is_empty());
}

#[tokio::test]
async fn a_stop_commits_the_open_batch_and_a_fetch_failure_fails_with_the_committed_checkpoint() {
    let bench = Bench::new("{ max_records: 1000, max_wait: 60s }");
    let metrics = bench.work.metrics.clone();
    let (outcome, _) = bench
        .load(|pages, stop| async move {
            pages.send(page(1, 4, false)).await.unwrap();
            // Once the page is in the open batch, a stop commits it.
            let deadline = Instant::now() + Duration::from_secs(10);
            while metrics.records_transformed.get() < 4 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.send_replace(true);
        })
        .await;
    assert!(
        matches!(&outcome, Outcome::Stopped(cp) if (cp.pages, cp.records) == (1, 4)),
        "{outcome:?}"
    );

    let bench = Bench::new("{ max_records: 1000, max_wait: 60s }");
    let pool = bench.reader().await;
    let (outcome, _) = bench
        .load(|pages, _stop| async move {
            pages.send(page(1, 4, false)).await.unwrap();
            let failure = super::super::prefetch::Failure {
                class: ErrorClass::User,
                error: "over max_pages".into(),
            };
            pages.send(Err(failure)).await.unwrap();
        })
        .await;
    match outcome {
        Outcome::Failed {
            checkpoint: Some(cp),
            class: ErrorClass::User,
            ..
        } => assert_eq!((cp.pages, cp.records), (1, 4)),
        other => panic!("{other:?}"),
    }
    assert_eq!(stored(&pool).await, (1, 4, 4));
}

#[tokio::test]
async fn a_page_the_sink_refuses_is_dead_lettered_alone_after_the_pages_before_it() {
    let bench = Bench::new("{ max_records: 6, max_wait: 60s }");
    let pool = bench.reader().await;
    sqlx::query("CREATE TABLE events (id BIGINT NOT NULL, name TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let bad = Ok(Page {
        records: vec![
            json!({"id": 3, "name": "c"}),
            json!({"id": 4, "name": null}),
        ],
        ..page(3, 2, false).unwrap()
    });
    let (outcome, _) = bench
        .load(|pages, _stop| async move {
            pages.send(page(1, 2, false)).await.unwrap();
            pages.send(bad).await.unwrap();
            let _ = pages.send(page(5, 2, false)).await;
        })
        .await;
    match outcome {
        Outcome::Failed {
            checkpoint: Some(cp),
            class: ErrorClass::User,
            dead_letters: Some(dead),
            ..
        } => {
            assert_eq!((cp.pages, cp.records), (1, 2));
            assert_eq!(dead.records, 2, "the report counts what the table holds");
            assert_eq!(dead.sample.len(), 2);
            assert!(dead.sample.iter().all(|d| d.page == 2), "{dead:?}");
            assert!(dead.sample[1].record.contains(r#""id":4"#), "{dead:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stored(&pool).await, (1, 2, 2), "the page before it, alone");
    let dead: Vec<(i64, String)> = sqlx::query_as(
        "SELECT page, CAST(record AS TEXT) FROM apitap_dead_letters ORDER BY ordinal",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().all(|(p, _)| *p == 2), "{dead:?}");
}
