//! The tests of the shared core, written once and run against every dialect on a real
//! database: each dialect's `tests.rs` implements [`Fixture`] and instantiates the suite
//! with [`sql_sink_suite!`], so a dialect cannot silently diverge from the others.
//!
//! Tests read back what the sink wrote through their own connection, with portable SQL
//! (every column cast to text, identifiers double-quoted).

use std::collections::HashSet;
use std::future::Future;

use apitap_common::checkpoint::{Checkpoint, Position};
use apitap_common::error::ErrorClass;
use apitap_common::spec::{LoadMode, Sink as SinkSpec};
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};
use sqlx::Pool;

use super::dialect::{Ddl, Dialect, Load};
use super::exec::SqlDb;
use super::table::TableName;
use crate::sink::{dead, AnySink, ShardRef, Sink, SinkError};
use crate::transform::infer::records_to_batch;

/// What runs a throwaway database of one dialect (a server, a file): [`Fixture::fresh`]
/// gives a fresh, empty database as a [`TestDb`] that holds it.
pub(crate) trait Fixture: Sized {
    type D: Ddl + Load;

    /// The type `CAST(x AS …)` makes text of (MySQL has no `CAST AS TEXT`); the suite's
    /// queries write `AS TEXT)` and [`rows`] puts this in its place.
    const TEXT: &'static str = "TEXT";

    /// How the database stores [`temporal_page`]: a query of the `times` table's `at` and
    /// `d` columns (as text), and the row it returns.
    const TEMPORAL: (&'static str, (&'static str, &'static str));

    /// A fresh, empty database.
    fn fresh() -> impl Future<Output = TestDb<Self>>;
}

/// A fresh database of the fixture `F`, gone when this is dropped.
pub(crate) struct TestDb<F: Fixture> {
    /// What runs the database.
    pub server: F,
    /// Where the database is, as the spec's `sink` section says it: the database's key
    /// (`postgres`, …) and its connection fields (`url`, `path`, …).
    pub location: (&'static str, Value),
    /// A pool of the test's own, to read back what the sinks wrote.
    pub reader: Pool<<F::D as Dialect>::Db>,
}

/// A sink on `table` of the fixture's database, opened from a spec as a worker opens it.
pub(crate) async fn open<F: Fixture>(
    fx: &TestDb<F>,
    table: &str,
    mode: LoadMode,
    primary_key: &[&str],
) -> AnySink {
    let (database, mut fields) = fx.location.clone();
    fields["table"] = json!(table);
    fields["mode"] = json!(mode);
    fields["primary_key"] = json!(primary_key);
    let spec: SinkSpec = serde_json::from_value(json!({ database: fields })).expect("a sink spec");
    crate::sink::open(
        &spec,
        crate::sink::Reach {
            namespace: "default",
            local_root: &crate::sink::LocalRoot::default(),
            egress: &crate::fetch::Egress::default(),
            pools: &crate::sink::SinkPools::default(),
        },
    )
    .await
    .expect("opening the sink")
}

/// Instantiates every test of the suite as a `#[tokio::test]` for `$fixture`.
macro_rules! sql_sink_suite {
    ($fixture:ty; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $crate::sink::sql::suite::$name::<$fixture>().await
            }
        )*
    };
    ($fixture:ty) => {
        $crate::sink::sql::suite::sql_sink_suite!($fixture;
            claim_commit_resume_and_fencing,
            empty_page_advances_the_checkpoint_and_commit_needs_a_claim,
            merge_upserts_the_last_row_of_a_key_and_needs_the_key,
            new_columns_are_added_and_nested_values_stored_as_json,
            a_page_of_a_thousand_new_keys_is_refused_and_changes_nothing,
            rejected_rows_are_a_user_error_and_roll_back,
            dead_letters_are_kept_once_and_fenced,
            timestamps_and_dates_keep_their_instant_and_day,
        );
    };
}
pub(crate) use sql_sink_suite;

/// Opens a sink on `table`, claims the shard and commits `batch` as its first page: the
/// start of a dialect's own tests of what it wrote.
pub(crate) async fn load_page<F: Fixture>(
    fx: &TestDb<F>,
    table: &str,
    mode: LoadMode,
    primary_key: &[&str],
    batch: &RecordBatch,
) -> AnySink {
    let mut sink = open(fx, table, mode, primary_key).await;
    sink.claim(&shard(), 1).await.expect("claiming");
    sink.commit(&shard(), 1, Some(batch), &at(1, 1, batch.num_rows() as u64))
        .await
        .expect("committing the page");
    sink
}

/// Asserts that the first two columns of the rows of `sql` (cast to text) are `want`, such
/// as names and types from a catalog (a NULL reads as "").
pub(crate) async fn expect_pairs<F: Fixture>(fx: &TestDb<F>, sql: &str, want: &[(&str, &str)]) {
    let got = rows(fx, sql).await;
    let cell = |v: &Option<String>| v.clone().unwrap_or_default();
    let got: Vec<(String, String)> = got.iter().map(|r| (cell(&r[0]), cell(&r[1]))).collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want, "{sql}");
}

/// Asserts that the rows of `sql` (every column cast to text) are `want`.
async fn expect_rows<F: Fixture>(fx: &TestDb<F>, sql: &str, want: &[&[Option<&str>]]) {
    let got = rows(fx, sql).await;
    let got: Vec<Vec<Option<&str>>> = got
        .iter()
        .map(|r| r.iter().map(Option::as_deref).collect())
        .collect();
    assert_eq!(got, want, "{sql}");
}

/// A page with a timestamp (`at`, 2023-11-14 22:13:20 UTC) and a date (`d`, 2024-02-29),
/// as the transform types them.
pub(crate) async fn temporal_page() -> RecordBatch {
    let t = crate::transform::Transformer::new(
        "SELECT id, to_timestamp_seconds(ts) AS at, CAST(day AS DATE) AS d FROM source",
        None,
    );
    t.run(&[json!({"id": 1, "ts": 1_700_000_000, "day": "2024-02-29"})])
        .await
        .expect("the transform runs")
        .expect("the transform returns rows")
}

pub(crate) fn shard() -> ShardRef {
    ShardRef {
        pipeline: "p".into(),
        run_id: 9,
        shard: 2,
    }
}

pub(crate) fn batch(v: Value) -> RecordBatch {
    records_to_batch(v.as_array().expect("a JSON array of records"), None)
        .expect("records convert to a batch")
}

/// A page of `n` users with the ids `first..first + n` (an `id` and a `name` each).
pub(crate) fn users_page(first: u64, n: u64) -> RecordBatch {
    let rows: Vec<_> = (first..first + n)
        .map(|id| serde_json::json!({"id": id, "name": format!("user {id}")}))
        .collect();
    batch(serde_json::json!(rows))
}

pub(crate) fn at(offset: u64, pages: u64, records: u64) -> Checkpoint {
    Checkpoint {
        position: Position::Offset { offset },
        pages,
        records,
        watermark: None,
    }
}

/// Every row of `sql` (whose columns are cast to text).
pub(crate) async fn rows<F: Fixture>(fx: &TestDb<F>, sql: &str) -> Vec<Vec<Option<String>>> {
    let sql = sql.replace(" AS TEXT)", &format!(" AS {})", F::TEXT));
    let mut conn = fx.reader.acquire().await.expect("a reader connection");
    <F::D as Dialect>::Db::fetch_rows(&mut conn, &sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn exec<F: Fixture>(fx: &TestDb<F>, sql: &str) {
    let mut conn = fx.reader.acquire().await.expect("a reader connection");
    <F::D as Dialect>::Db::execute(&mut conn, sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count<F: Fixture>(fx: &TestDb<F>, table: &str) -> String {
    let got = rows(
        fx,
        &format!("SELECT CAST(COUNT(*) AS TEXT) FROM \"{table}\""),
    )
    .await;
    got[0][0].clone().unwrap_or_default()
}

/// The table's columns as the dialect reads them (`None`: no such table).
async fn columns<F: Fixture>(fx: &TestDb<F>, table: &str) -> Option<HashSet<String>> {
    let mut conn = fx.reader.acquire().await.expect("a reader connection");
    F::D::table_columns(&mut conn, &TableName::plain(table))
        .await
        .expect("reading the columns")
}

fn text(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn json_text(v: &Option<String>) -> Value {
    serde_json::from_str(v.as_deref().unwrap_or("null")).expect("stored JSON text")
}

pub(crate) async fn claim_commit_resume_and_fencing<F: Fixture>() {
    let fx = F::fresh().await;
    let mut old = open(&fx, "userEvents", LoadMode::Append, &[]).await;
    assert_eq!(old.claim(&shard(), 10).await.unwrap(), Checkpoint::start());
    let cp1 = at(2, 1, 2);
    let rows1 = batch(json!([
        {"id": 1, "userName": "ann", "score": 1.5},
        {"id": 2, "userName": "say \"hi\", ok\n", "score": null}
    ]));
    old.commit(&shard(), 10, Some(&rows1), &cp1).await.unwrap();
    // Claiming again with the same fence is allowed and resumes.
    assert_eq!(old.claim(&shard(), 10).await.unwrap(), cp1);

    let mut new = open(&fx, "userEvents", LoadMode::Append, &[]).await;
    assert_eq!(new.claim(&shard(), 12).await.unwrap(), cp1);

    let late = batch(json!([{"id": 3, "userName": "zed"}]));
    let err = old
        .commit(&shard(), 10, Some(&late), &at(3, 2, 3))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SinkError::Fenced {
            stored: 12,
            ours: 10
        }
    );
    assert!(err.is_fenced());
    let err = old.claim(&shard(), 11).await.unwrap_err();
    assert_eq!(
        err,
        SinkError::Fenced {
            stored: 12,
            ours: 11
        }
    );
    assert_eq!(
        count(&fx, "userEvents").await,
        "2",
        "the fenced commit wrote nothing"
    );

    new.commit(&shard(), 12, Some(&late), &at(3, 2, 3))
        .await
        .unwrap();
    expect_rows(
        &fx,
        "SELECT CAST(id AS TEXT), CAST(\"userName\" AS TEXT), CAST(score AS TEXT) \
         FROM \"userEvents\" ORDER BY id",
        &[
            &[Some("1"), Some("ann"), Some("1.5")],
            &[Some("2"), Some("say \"hi\", ok\n"), None],
            &[Some("3"), Some("zed"), None],
        ],
    )
    .await;
    expect_rows(
        &fx,
        "SELECT CAST(fence AS TEXT), CAST(records AS TEXT), CAST(pages AS TEXT) \
         FROM apitap_checkpoints",
        &[&[Some("12"), Some("3"), Some("2")]],
    )
    .await;
}

pub(crate) async fn empty_page_advances_the_checkpoint_and_commit_needs_a_claim<F: Fixture>() {
    let fx = F::fresh().await;
    let mut sink = open(&fx, "events", LoadMode::Append, &[]).await;
    // Before any claim there is not even a checkpoint table.
    let err = sink
        .commit(&shard(), 1, None, &Checkpoint::start())
        .await
        .unwrap_err();
    assert!(!err.is_fenced(), "{err}");
    sink.claim(&shard(), 1).await.unwrap();
    let other = ShardRef {
        shard: 3,
        ..shard()
    };
    let err = sink
        .commit(&other, 1, None, &Checkpoint::start())
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Internal(_)), "{err}");

    let done = Checkpoint {
        position: Position::Done,
        pages: 1,
        records: 0,
        watermark: None,
    };
    sink.commit(&shard(), 1, None, &done).await.unwrap();
    assert_eq!(sink.claim(&shard(), 2).await.unwrap(), done);
    assert_eq!(columns(&fx, "events").await, None, "no rows, no table");
}

pub(crate) async fn merge_upserts_the_last_row_of_a_key_and_needs_the_key<F: Fixture>() {
    let fx = F::fresh().await;
    let mut sink = open(&fx, "events", LoadMode::Merge, &["id"]).await;
    sink.claim(&shard(), 1).await.unwrap();
    let first = batch(json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]));
    sink.commit(&shard(), 1, Some(&first), &at(2, 1, 2))
        .await
        .unwrap();
    // The same key twice in a page: the later row wins. A new column comes along.
    let second = batch(json!([
        {"id": 1, "name": "c", "extra": 5},
        {"id": 3, "name": "d"},
        {"id": 1, "name": "e", "extra": 6}
    ]));
    sink.commit(&shard(), 1, Some(&second), &at(5, 2, 5))
        .await
        .unwrap();
    expect_rows(
        &fx,
        "SELECT CAST(id AS TEXT), CAST(name AS TEXT), CAST(extra AS TEXT) FROM events ORDER BY id",
        &[
            &[Some("1"), Some("e"), Some("6")],
            &[Some("2"), Some("b"), None],
            &[Some("3"), Some("d"), None],
        ],
    )
    .await;

    let no_key = batch(json!([{"name": "x"}]));
    let err = sink
        .commit(&shard(), 1, Some(&no_key), &at(6, 3, 6))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::User, "{err}");
    assert_eq!(sink.claim(&shard(), 2).await.unwrap(), at(5, 2, 5));
}

pub(crate) async fn new_columns_are_added_and_nested_values_stored_as_json<F: Fixture>() {
    let fx = F::fresh().await;
    let mut sink = open(&fx, "events", LoadMode::Append, &[]).await;
    sink.claim(&shard(), 1).await.unwrap();
    let first = batch(json!([{"id": 1, "ghost": null}]));
    sink.commit(&shard(), 1, Some(&first), &at(1, 1, 1))
        .await
        .unwrap();
    let later = batch(json!([
        {"id": 2, "extra": "x", "tags": ["a"], "user": {"login": "l"}, "ghost": null}
    ]));
    sink.commit(&shard(), 1, Some(&later), &at(2, 2, 2))
        .await
        .unwrap();

    let cols = columns(&fx, "events").await.expect("the table exists");
    let want: HashSet<String> = ["id", "extra", "tags", "user"].map(String::from).into();
    assert_eq!(
        cols, want,
        "an all-null column has no type yet, so no column"
    );
    let got = rows(
        &fx,
        "SELECT CAST(id AS TEXT), CAST(extra AS TEXT), CAST(tags AS TEXT), CAST(\"user\" AS TEXT) \
         FROM events ORDER BY id",
    )
    .await;
    assert_eq!(got[0], [text("1"), None, None, None]);
    assert_eq!(got[1][..2], [text("2"), text("x")]);
    assert_eq!(json_text(&got[1][2]), json!(["a"]));
    assert_eq!(json_text(&got[1][3]), json!({"login": "l"}));
}

pub(crate) async fn a_page_of_a_thousand_new_keys_is_refused_and_changes_nothing<F: Fixture>() {
    let fx = F::fresh().await;
    let mut sink = open(&fx, "events", LoadMode::Append, &[]).await;
    sink.claim(&shard(), 1).await.unwrap();
    let first = batch(json!([{"id": 1}]));
    sink.commit(&shard(), 1, Some(&first), &at(1, 1, 1))
        .await
        .unwrap();

    let record: serde_json::Map<String, Value> =
        (0..1000).map(|i| (format!("key_{i}"), json!(i))).collect();
    let hostile = batch(json!([record]));
    let err = sink
        .commit(&shard(), 1, Some(&hostile), &at(2, 2, 2))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SinkError::User(_)), "{message}");
    assert!(
        message.contains("max_new_columns") && message.contains("1000 new columns"),
        "{message}"
    );
    // Neither the table nor the checkpoint moved.
    assert_eq!(columns(&fx, "events").await.map(|c| c.len()), Some(1));
    assert_eq!(count(&fx, "events").await, "1");
    let mut again = open(&fx, "events", LoadMode::Append, &[]).await;
    assert_eq!(again.claim(&shard(), 2).await.unwrap(), at(1, 1, 1));
}

pub(crate) async fn rejected_rows_are_a_user_error_and_roll_back<F: Fixture>() {
    let fx = F::fresh().await;
    exec(
        &fx,
        "CREATE TABLE events (id BIGINT NOT NULL, name TEXT NOT NULL)",
    )
    .await;
    let mut sink = open(&fx, "events", LoadMode::Append, &[]).await;
    sink.claim(&shard(), 1).await.unwrap();
    let no_name = batch(json!([{"id": 1}, {"id": 2}]));
    let err = sink
        .commit(&shard(), 1, Some(&no_name), &at(2, 1, 2))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::User, "{err}");
    assert_eq!(sink.claim(&shard(), 1).await.unwrap(), Checkpoint::start());
    // The sink still works after the failed transaction.
    let good = batch(json!([{"id": 4, "name": "n"}]));
    sink.commit(&shard(), 1, Some(&good), &at(1, 1, 1))
        .await
        .unwrap();
    assert_eq!(count(&fx, "events").await, "1");
}

pub(crate) async fn dead_letters_are_kept_once_and_fenced<F: Fixture>() {
    let fx = F::fresh().await;
    let mut old = open(&fx, "events", LoadMode::Append, &[]).await;
    old.claim(&shard(), 1).await.unwrap();
    // Records are kept as JSON whatever they are, not only objects.
    let records = [
        json!({"id": 1, "bad": [1, 2]}),
        json!("a string"),
        json!(true),
        json!(null),
        json!(2.5),
    ];
    for _ in 0..2 {
        // A retried page keeps its records once.
        old.dead_letter(&shard(), 1, dead(4, &records, "cannot cast"))
            .await
            .unwrap();
    }
    let select = "SELECT CAST(page AS TEXT), CAST(ordinal AS TEXT), CAST(fence AS TEXT), \
                  CAST(error AS TEXT), CAST(record AS TEXT) FROM apitap_dead_letters ORDER BY ordinal";
    let got = rows(&fx, select).await;
    assert_eq!(got.len(), records.len(), "{got:?}");
    for (i, row) in got.iter().enumerate() {
        let ordinal = (i + 1).to_string();
        assert_eq!(
            row[..4],
            [text("4"), Some(ordinal), text("1"), text("cannot cast")]
        );
        assert_eq!(json_text(&row[4]), records[i]);
    }

    let mut new = open(&fx, "events", LoadMode::Append, &[]).await;
    new.claim(&shard(), 2).await.unwrap();
    let err = old
        .dead_letter(&shard(), 1, dead(5, &records, "late"))
        .await
        .unwrap_err();
    assert_eq!(err, SinkError::Fenced { stored: 2, ours: 1 });
    let kept = rows(&fx, select).await.len();
    assert_eq!(kept, records.len(), "the fenced write kept nothing");
}

pub(crate) async fn timestamps_and_dates_keep_their_instant_and_day<F: Fixture>() {
    let fx = F::fresh().await;
    load_page(&fx, "times", LoadMode::Append, &[], &temporal_page().await).await;
    let (sql, want) = F::TEMPORAL;
    expect_pairs(&fx, sql, &[want]).await;
}
