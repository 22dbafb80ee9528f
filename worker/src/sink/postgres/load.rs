//! Bulk load for PostgreSQL: rows → CSV (`csv.rs`) → `COPY` into a temporary staging table →
//! one `INSERT … SELECT` (append) or `INSERT … SELECT … ON CONFLICT DO UPDATE` (merge) into
//! the target, all inside the commit transaction. Naive timestamps are read as UTC
//! (`SET LOCAL TimeZone`).
//!
//! The staging table is `CREATE TEMP TABLE … AS SELECT <batch columns> FROM target WITH NO
//! DATA`: it has the target's column types (so COPY parses the CSV text into them and bad
//! values fail with PostgreSQL's message) but none of its constraints, defaults or identity
//! columns, which the staging rows do not need. It is dropped at commit or rollback.

use arrow::record_batch::RecordBatch;
use sqlx::PgConnection;

use super::csv::to_csv;
use super::PostgresDialect;
use crate::sink::sql::dialect::{Dialect, Load};
use crate::sink::sql::table::{quote_list, upsert_clause, Column, TableName};
use crate::sink::SinkError;

const STAGE: &str = "pg_temp.\"_apitap_stage\"";

impl Load for PostgresDialect {
    /// Stages `rows` and moves them into `table`.
    async fn load(
        conn: &mut PgConnection,
        table: &TableName,
        columns: &[Column],
        rows: &RecordBatch,
        primary_key: &[String],
    ) -> Result<(), SinkError> {
        sqlx::query("SET LOCAL TimeZone = 'UTC'")
            .execute(&mut *conn)
            .await
            .map_err(Self::err("setting the time zone"))?;
        let csv = to_csv(rows, columns)?;
        let cols = quote_list(columns.iter().map(|c| c.name.as_str()));
        let stage = format!(
            "CREATE TEMP TABLE \"_apitap_stage\" ON COMMIT DROP AS SELECT {cols} FROM {} WITH NO DATA",
            table.quoted()
        );
        sqlx::query(&stage)
            .execute(&mut *conn)
            .await
            .map_err(Self::err("creating the staging table"))?;

        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {STAGE} ({cols}) FROM STDIN WITH (FORMAT csv)"
            ))
            .await
            .map_err(Self::err("starting COPY"))?;
        if let Err(e) = copy.send(csv).await {
            let _ = copy.abort("send failed").await;
            return Err(Self::err("sending COPY data")(e));
        }
        copy.finish()
            .await
            .map_err(Self::err("loading rows (COPY)"))?;

        let insert = if primary_key.is_empty() {
            format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {STAGE}",
                table.quoted()
            )
        } else {
            // One row per key, the last one of the page, as if the rows were upserted in order
            // (a plain ON CONFLICT would fail on a key that occurs twice in one statement).
            let keys = quote_list(primary_key.iter().map(String::as_str));
            format!(
                "INSERT INTO {} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM {STAGE} \
                 ORDER BY {keys}, ctid DESC{}",
                table.quoted(),
                upsert_clause(columns, primary_key)
            )
        };
        sqlx::query(&insert)
            .execute(&mut *conn)
            .await
            .map_err(Self::err("moving staged rows into the target table"))?;
        Ok(())
    }
}
