//! The shared suite against a throwaway PostgreSQL server (the testbed's `TempPostgres`,
//! one per test), then what only PostgreSQL does: column types, schemas, time zones and
//! connection errors.

use apitap_chaos::testbed::TempPostgres;
use apitap_common::error::ErrorClass;
use apitap_common::spec::{LoadMode, PostgresSink as PostgresSpec};
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::PostgresSink;
use crate::sink::sql::suite::{
    batch, load_page, owned, pairs, sql_sink_suite, temporal_page, Fixture,
};

/// A server of the test's own, stopped on drop.
struct TestPostgres {
    server: TempPostgres,
    reader: PgPool,
}

/// A spec of the fields a test sets.
fn spec(url: &str, table: &str) -> PostgresSpec {
    serde_json::from_value(json!({"url": url, "table": table})).expect("a PostgreSQL sink spec")
}

impl Fixture for TestPostgres {
    type D = super::PostgresDialect;

    async fn start() -> Self {
        let server = tokio::task::spawn_blocking(TempPostgres::start)
            .await
            .expect("the start task")
            .expect("a throwaway PostgreSQL (scripts/prereqs.sh installs the server)");
        let reader = PgPoolOptions::new()
            .max_connections(1)
            .connect(&server.url())
            .await
            .expect("connecting to the throwaway PostgreSQL");
        Self { server, reader }
    }

    fn location(&self) -> (&'static str, Value) {
        ("postgres", json!({ "url": self.server.url() }))
    }

    fn reader(&self) -> &PgPool {
        &self.reader
    }
}

sql_sink_suite!(TestPostgres);

#[tokio::test]
async fn a_qualified_table_gets_its_schema_and_typed_columns() {
    let fx = TestPostgres::start().await;
    let page = batch(json!([{
        "id": 1, "userName": "ann", "score": 1.5, "ok": true, "tags": ["a"], "meta": {"k": "v"}
    }]));
    load_page(&fx, "analytics.userEvents", LoadMode::Append, &[], &page).await;
    let types = pairs(
        &fx,
        "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) \
         FROM information_schema.columns \
         WHERE table_schema = 'analytics' AND table_name = 'userEvents' ORDER BY column_name",
    )
    .await;
    let want = [
        ("id", "bigint"),
        ("meta", "jsonb"),
        ("ok", "boolean"),
        ("score", "double precision"),
        ("tags", "jsonb"),
        ("userName", "text"),
    ];
    assert_eq!(types, owned(&want));
}

#[tokio::test]
async fn temporal_types_load_as_date_and_timestamptz() {
    let fx = TestPostgres::start().await;
    load_page(&fx, "times", LoadMode::Append, &[], &temporal_page().await).await;
    let got = pairs(
        &fx,
        "SELECT CAST(extract(epoch FROM at) AS TEXT), CAST(d AS TEXT) FROM times",
    )
    .await;
    assert_eq!(got, owned(&[("1700000000.000000", "2024-02-29")]));
}

#[tokio::test]
async fn connection_errors_are_classified() {
    let fx = TestPostgres::start().await;
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
