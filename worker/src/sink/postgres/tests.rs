//! The shared suite against a throwaway PostgreSQL server (the testbed's `TempPostgres`,
//! one per test), then what only PostgreSQL does: column types, schemas, time zones and
//! connection errors.

use apitap_chaos::testbed::TempPostgres;
use apitap_common::error::ErrorClass;
use apitap_common::spec::{LoadMode, PostgresSink as PostgresSpec};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

use super::PostgresSink;
use crate::sink::sql::suite::{batch, expect_pairs, load_page, sql_sink_suite, Fixture, TestDb};

/// A spec of the fields a test sets.
fn spec(url: &str, table: &str) -> PostgresSpec {
    serde_json::from_value(json!({"url": url, "table": table})).expect("a PostgreSQL sink spec")
}

/// A server of the test's own, stopped on drop.
impl Fixture for TempPostgres {
    type D = super::PostgresDialect;
    /// `timestamptz`, read as seconds since the epoch (whatever the reader's time zone).
    const TEMPORAL: (&'static str, (&'static str, &'static str)) = (
        "SELECT CAST(extract(epoch FROM at) AS TEXT), CAST(d AS TEXT) FROM times",
        ("1700000000.000000", "2024-02-29"),
    );

    async fn fresh() -> TestDb<Self> {
        let server = tokio::task::spawn_blocking(TempPostgres::start)
            .await
            .expect("the start task")
            .expect("a throwaway PostgreSQL (scripts/prereqs.sh installs the server)");
        let reader = PgPoolOptions::new()
            .max_connections(1)
            .connect(&server.url())
            .await
            .expect("connecting to the throwaway PostgreSQL");
        TestDb {
            location: ("postgres", json!({ "url": server.url() })),
            server,
            reader,
        }
    }
}

sql_sink_suite!(TempPostgres);

#[tokio::test]
async fn a_qualified_table_gets_its_schema_and_typed_columns() {
    let fx = TempPostgres::fresh().await;
    let page = batch(json!([{
        "id": 1, "userName": "ann", "score": 1.5, "ok": true, "tags": ["a"], "meta": {"k": "v"}
    }]));
    load_page(&fx, "analytics.userEvents", LoadMode::Append, &[], &page).await;
    expect_pairs(
        &fx,
        "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) \
         FROM information_schema.columns \
         WHERE table_schema = 'analytics' AND table_name = 'userEvents' ORDER BY column_name",
        &[
            ("id", "bigint"),
            ("meta", "jsonb"),
            ("ok", "boolean"),
            ("score", "double precision"),
            ("tags", "jsonb"),
            ("userName", "text"),
        ],
    )
    .await;
}

#[tokio::test]
async fn connection_errors_are_classified() {
    let fx = TempPostgres::fresh().await;
    let mut missing_db = url::Url::parse(&fx.server.url()).unwrap();
    missing_db.set_path("/apitap_no_such_database");
    let spec_missing = spec(missing_db.as_str(), "t");
    match PostgresSink::connect(&spec_missing, &Default::default()).await {
        Err(e) => assert_eq!(e.class(), ErrorClass::User, "{e}"),
        Ok(_) => panic!("connected to a missing database"),
    }
    let unreachable = spec("postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "t");
    match PostgresSink::connect(&unreachable, &Default::default()).await {
        Err(e) => assert_eq!(e.class(), ErrorClass::Transient, "{e}"),
        Ok(_) => panic!("connected to port 1"),
    }
}
