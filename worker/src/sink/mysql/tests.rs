//! The shared suite against a throwaway MariaDB server (the testbed's `TempMariadb`, one
//! per test), then what only MySQL does: column types, timestamps, connection errors.

use apitap_chaos::testbed::TempMariadb;
use apitap_common::error::ErrorClass;
use apitap_common::spec::{LoadMode, MysqlSink as MysqlSpec};
use serde_json::{json, Value};
use sqlx::MySqlPool;

use crate::sink::sql::suite::{
    batch, load_page, owned, pairs, sql_sink_suite, temporal_page, Fixture,
};

/// A server of the test's own, killed on drop.
struct TestMariadb {
    server: TempMariadb,
    reader: MySqlPool,
}

impl Fixture for TestMariadb {
    type D = super::MysqlDialect;
    const TEXT: &'static str = "CHAR";

    async fn start() -> Self {
        let server = tokio::task::spawn_blocking(TempMariadb::start)
            .await
            .expect("the start task")
            .expect("a throwaway MariaDB (scripts/prereqs.sh installs the server)");
        let reader = super::pool(&server.url(), 2)
            .await
            .expect("connecting to the throwaway MariaDB");
        Self { server, reader }
    }

    fn location(&self) -> (&'static str, Value) {
        ("mysql", json!({ "url": self.server.url() }))
    }

    fn reader(&self) -> &MySqlPool {
        &self.reader
    }
}

sql_sink_suite!(TestMariadb);

#[tokio::test]
async fn columns_get_mysql_types_and_a_string_key_is_bounded() {
    let fx = TestMariadb::start().await;
    let page = batch(json!([{
        "code": "a", "id": 1, "score": 1.5, "ok": true, "tags": ["x"], "note": "n"
    }]));
    load_page(&fx, "events", LoadMode::Merge, &["code"], &page).await;
    let types = pairs(
        &fx,
        "SELECT CAST(column_name AS TEXT), CAST(column_type AS TEXT) \
         FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = 'events' ORDER BY column_name",
    )
    .await;
    let want = [
        ("code", "varchar(255)"),
        ("id", "bigint(20)"),
        ("note", "longtext"),
        ("ok", "tinyint(1)"),
        ("score", "double"),
        ("tags", "longtext"),
    ];
    assert_eq!(types, owned(&want));
}

#[tokio::test]
async fn timestamps_load_as_utc_datetimes() {
    let fx = TestMariadb::start().await;
    load_page(&fx, "times", LoadMode::Append, &[], &temporal_page().await).await;
    let got = pairs(
        &fx,
        "SELECT CAST(\"at\" AS TEXT), CAST(d AS TEXT) FROM times",
    )
    .await;
    assert_eq!(got, owned(&[("2023-11-14 22:13:20.000000", "2024-02-29")]));
}

#[tokio::test]
async fn connection_errors_are_classified() {
    let fx = TestMariadb::start().await;
    let missing = format!("mysql://root@127.0.0.1:{}/apitap_none", fx.server.port);
    let unreachable = "mysql://nobody@127.0.0.1:1/none".to_string();
    for (url, class) in [
        (missing, ErrorClass::User),
        (unreachable, ErrorClass::Transient),
    ] {
        let spec: MysqlSpec = serde_json::from_value(json!({"url": url, "table": "t"})).unwrap();
        match super::MysqlSink::connect(&spec, &Default::default()).await {
            Err(e) => assert_eq!(e.class(), class, "{url}: {e}"),
            Ok(_) => panic!("connected to {url}"),
        }
    }
}
