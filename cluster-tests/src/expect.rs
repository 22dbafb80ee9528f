//! Compares a PostgreSQL table with the mock API's dataset: row count, the set of ids, no
//! duplicates, and a checksum over every column's content.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use apitap_chaos::mock_api::record;
use serde_json::Value;
use sqlx::{PgPool, Row};

/// One row in canonical text form: the same for the mock record and the loaded row.
fn canonical(r: &Value) -> String {
    format!(
        "{}|{}|{}|{:.4}|{}|{}|{}|{}",
        r["id"],
        r["userName"],
        r["email"],
        r["score"].as_f64().unwrap_or(f64::NAN),
        r["active"],
        r["createdAt"],
        r["tags"],
        r["address"]
    )
}

/// [`exact_dataset`] in the PostgreSQL database at `url`.
pub async fn exact_dataset_at(url: &str, table: &str, n: u64) -> anyhow::Result<()> {
    exact_dataset(&PgPool::connect(url).await?, table, n).await
}

/// Asserts that `table` holds exactly records `1..=n` of the mock dataset.
pub async fn exact_dataset(pool: &PgPool, table: &str, n: u64) -> anyhow::Result<()> {
    let count: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(pool)
        .await?
        .get(0);
    let distinct: i64 = sqlx::query(&format!("SELECT COUNT(DISTINCT id) FROM {table}"))
        .fetch_one(pool)
        .await?
        .get(0);
    anyhow::ensure!(count as u64 == n, "{table}: {count} rows, expected {n}");
    anyhow::ensure!(
        distinct == count,
        "{table}: {} duplicate rows",
        count - distinct
    );
    let rows = sqlx::query(&format!(
        r#"SELECT id, "userName", email, score, active, "createdAt", tags::text, address::text FROM {table} ORDER BY id"#
    ))
    .fetch_all(pool)
    .await?;
    let ids: BTreeSet<u64> = rows.iter().map(|r| r.get::<i64, _>(0) as u64).collect();
    let want: BTreeSet<u64> = (1..=n).collect();
    anyhow::ensure!(
        ids == want,
        "{table}: ids differ from 1..={n}: missing {:?}",
        want.difference(&ids).take(10).collect::<Vec<_>>()
    );
    let mut got_hash = DefaultHasher::new();
    let mut want_hash = DefaultHasher::new();
    for r in &rows {
        let id: i64 = r.get(0);
        let row = serde_json::json!({
            "id": id,
            "userName": r.get::<String, _>(1),
            "email": r.get::<String, _>(2),
            "score": r.get::<f64, _>(3),
            "active": r.get::<bool, _>(4),
            "createdAt": r.get::<String, _>(5),
            "tags": serde_json::from_str::<Value>(&r.get::<String, _>(6))?,
            "address": serde_json::from_str::<Value>(&r.get::<String, _>(7))?,
        });
        let got = canonical(&row);
        let want = canonical(&record(id as u64));
        anyhow::ensure!(
            got == want,
            "{table}: row {id} differs:\n  got  {got}\n  want {want}"
        );
        got.hash(&mut got_hash);
        want.hash(&mut want_hash);
    }
    anyhow::ensure!(
        got_hash.finish() == want_hash.finish(),
        "{table}: checksum differs"
    );
    Ok(())
}

/// Records a run loaded, summed over its shards (`describe run -o json`).
pub fn total_records(run: &serde_json::Value) -> u64 {
    run["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["records"].as_u64().unwrap_or(0))
        .sum()
}
