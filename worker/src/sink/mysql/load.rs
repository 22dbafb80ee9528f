//! Row loading for MySQL: multi-row `INSERT`s inside the commit transaction, as many rows a
//! statement as stay under the protocol's 65,535 placeholders. In merge mode each
//! statement ends in `ON DUPLICATE KEY UPDATE`, which applies its rows in order, so a later
//! row of the page wins over an earlier one with the same key.

use arrow::record_batch::RecordBatch;
use serde_json::Value;
use sqlx::MySqlConnection;

use super::MysqlDialect;
use crate::sink::sql::dialect::{Dialect, Load};
use crate::sink::sql::exec::{Param, SqlDb};
use crate::sink::sql::table::{json_rows, quote_ident, quote_list, Column, TableName};
use crate::sink::SinkError;

/// Placeholders one statement may carry (the protocol counts them in 16 bits).
const MAX_PARAMS: usize = 65_535;

impl Load for MysqlDialect {
    async fn load(
        conn: &mut MySqlConnection,
        table: &TableName,
        columns: &[Column],
        rows: &RecordBatch,
        primary_key: &[String],
    ) -> Result<(), SinkError> {
        let rows = json_rows(rows, columns)?;
        let per_row = format!("({})", vec!["?"; columns.len()].join(", "));
        let names = quote_list(columns.iter().map(|c| c.name.as_str()));
        let chunk = (MAX_PARAMS / columns.len().max(1)).max(1);
        for page in rows.chunks(chunk) {
            let mut insert = format!(
                "INSERT INTO {} ({names}) VALUES {}",
                table.quoted(),
                vec![per_row.as_str(); page.len()].join(", ")
            );
            if !primary_key.is_empty() {
                insert.push_str(&on_duplicate_key(columns, primary_key));
            }
            let params: Vec<Param<'_>> = page
                .iter()
                .flat_map(|row| columns.iter().map(|c| value(c, row.get(&c.name))))
                .collect();
            sqlx::MySql::execute(&mut *conn, &insert, &params)
                .await
                .map_err(Self::err("inserting rows"))?;
        }
        Ok(())
    }
}

/// A row value; timestamps lose the `Z` that MySQL's `DATETIME` does not accept (the
/// session runs in UTC, so the value is the same instant).
fn value<'a>(c: &Column, v: Option<&'a Value>) -> Param<'a> {
    match (&c.data_type, v) {
        (arrow::datatypes::DataType::Timestamp(_, _), Some(Value::String(s))) => {
            Param::text(s.strip_suffix('Z').unwrap_or(s))
        }
        _ => Param::from_json(c.kind, v),
    }
}

/// Updates every non-key column from the new row; a no-op update of the first key when
/// all columns are keys (MySQL has no `DO NOTHING`).
fn on_duplicate_key(columns: &[Column], primary_key: &[String]) -> String {
    let mut updates: Vec<String> = columns
        .iter()
        .filter(|c| !primary_key.contains(&c.name))
        .map(|c| format!("{0} = VALUES({0})", quote_ident(&c.name)))
        .collect();
    if let (true, Some(first)) = (updates.is_empty(), primary_key.first()) {
        let first = quote_ident(first);
        updates.push(format!("{first} = {first}"));
    }
    format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::sql::table::ValueKind;

    #[test]
    fn merge_updates_the_other_columns() {
        let col = |name: &str| Column {
            name: name.into(),
            index: 0,
            data_type: arrow::datatypes::DataType::Utf8,
            kind: ValueKind::Scalar,
        };
        let key = vec!["id".to_string()];
        assert_eq!(
            on_duplicate_key(&[col("id"), col("name")], &key),
            " ON DUPLICATE KEY UPDATE \"name\" = VALUES(\"name\")"
        );
        assert_eq!(
            on_duplicate_key(&[col("id")], &key),
            " ON DUPLICATE KEY UPDATE \"id\" = \"id\""
        );
    }
}
