//! Schema evolution of the target table: create it from the first page's Arrow schema, add
//! the columns later pages bring, within the [`ColumnLimits`]. Runs inside the commit
//! transaction, so a page whose DDL or rows fail leaves the table as it was, where the
//! database has transactional DDL (SQLite and PostgreSQL); elsewhere (MySQL) it runs just
//! before the commit transaction, and columns it added stay.
//!
//! The database is only asked when a page brings a column the sink has not seen yet, so
//! steady-state commits never take the DDL lock.

use std::collections::HashSet;

use arrow::datatypes::{DataType, Schema};

use super::columns::ColumnLimits;
use super::dialect::{Conn, Ddl};
use super::exec::SqlDb;
use super::table::{needed_columns, quote_ident, quote_list, write_columns, Column, TableName};
use crate::sink::SinkError;

/// Makes sure `table` has every typed column of `schema` and returns its columns. `known`
/// is the sink's cached column set; when it already covers the batch nothing is asked of
/// the database. `primary_key` (empty in append mode) becomes the new table's key.
pub(crate) async fn ensure_table<D: Ddl>(
    conn: &mut Conn<D>,
    table: &TableName,
    schema: &Schema,
    primary_key: &[String],
    known: Option<HashSet<String>>,
    limits: &ColumnLimits,
) -> Result<HashSet<String>, SinkError> {
    if let Some(k) = known {
        if needed_columns(schema).iter().all(|n| k.contains(*n)) {
            return Ok(k);
        }
    }
    D::lock_ddl(conn).await?;
    let existing = D::table_columns(conn, table).await?;
    let found = existing.clone().unwrap_or_default();
    let missing: Vec<Column> = write_columns(schema, &found)
        .into_iter()
        .filter(|c| c.data_type != DataType::Null && !found.contains(&c.name))
        .collect();
    if missing.is_empty() {
        return Ok(found);
    }
    let new: Vec<&str> = missing.iter().map(|c| c.name.as_str()).collect();
    limits.check(&table.quoted(), found.len(), &new)?;
    let definitions: Vec<String> = missing
        .iter()
        .map(|c| {
            let key = primary_key.contains(&c.name);
            format!("{} {}", quote_ident(&c.name), D::column_type(c, key))
        })
        .collect();
    let statements = match existing {
        None => {
            D::create_schema(conn, table).await?;
            vec![create_table(table, definitions, primary_key)]
        }
        Some(_) => D::add_columns(table, &definitions),
    };
    for ddl in &statements {
        D::Db::execute(conn, ddl, &[])
            .await
            .map_err(D::err("creating or altering the target table"))?;
    }
    let mut all = found;
    all.extend(missing.into_iter().map(|c| c.name));
    Ok(all)
}

fn create_table(table: &TableName, mut definitions: Vec<String>, primary_key: &[String]) -> String {
    if !primary_key.is_empty() {
        definitions.push(format!(
            "PRIMARY KEY ({})",
            quote_list(primary_key.iter().map(String::as_str))
        ));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        table.quoted(),
        definitions.join(", ")
    )
}
