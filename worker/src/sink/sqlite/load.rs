//! Row loading for SQLite, which has no COPY: one prepared `INSERT` (sqlx caches the
//! statement per connection) executed per row inside the commit transaction, which is fast
//! for an embedded database. In merge mode each row is an upsert, so a later row of the
//! page wins over an earlier one with the same key.

use arrow::record_batch::RecordBatch;
use sqlx::SqliteConnection;

use super::SqliteDialect;
use crate::sink::sql::dialect::{Dialect, Load};
use crate::sink::sql::exec::{Param, SqlDb};
use crate::sink::sql::table::{json_rows, quote_list, upsert_clause, Column, TableName};
use crate::sink::SinkError;

impl Load for SqliteDialect {
    async fn load(
        conn: &mut SqliteConnection,
        table: &TableName,
        columns: &[Column],
        rows: &RecordBatch,
        primary_key: &[String],
    ) -> Result<(), SinkError> {
        let rows = json_rows(rows, columns)?;
        let mut insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.quoted(),
            quote_list(columns.iter().map(|c| c.name.as_str())),
            vec!["?"; columns.len()].join(", ")
        );
        if !primary_key.is_empty() {
            insert.push_str(&upsert_clause(columns, primary_key));
        }
        for row in rows {
            let params: Vec<Param<'_>> = columns
                .iter()
                .map(|c| Param::from_json(c.kind, row.get(&c.name)))
                .collect();
            sqlx::Sqlite::execute(&mut *conn, &insert, &params)
                .await
                .map_err(Self::err("inserting rows"))?;
        }
        Ok(())
    }
}
