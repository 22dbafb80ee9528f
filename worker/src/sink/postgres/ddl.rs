//! Target-table DDL for PostgreSQL: create the table from the batch's Arrow schema, add
//! columns that appear later, map Arrow types to column types.
//!
//! DDL runs inside the commit transaction under a transaction-scoped advisory lock, so
//! several workers that see a new table or column at once take turns instead of failing
//! on `CREATE TABLE` races; the lock is only taken when the batch brings a column the sink
//! has not seen yet, so steady-state commits never wait on it.

use std::collections::HashSet;

use arrow::datatypes::{DataType, Schema};
use sqlx::PgConnection;

use super::super::table::{
    base_type, needed_columns, quote_ident, quote_list, write_columns, Column, TableName, ValueKind,
};
use super::super::SinkError;
use super::err;
use crate::sink::columns::ColumnLimits;

/// Advisory lock key serializing ApiTap's DDL in one database ("apitap" in ASCII).
pub(crate) const DDL_LOCK_KEY: i64 = 0x6170_6974_6170;

/// Takes the DDL lock until the transaction ends.
pub(crate) async fn lock_ddl(conn: &mut PgConnection) -> Result<(), SinkError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DDL_LOCK_KEY)
        .execute(conn)
        .await
        .map_err(err("taking the DDL lock"))?;
    Ok(())
}

/// The column type for a batch column.
pub(crate) fn pg_type(c: &Column) -> &'static str {
    if c.kind != ValueKind::Scalar {
        return "JSONB";
    }
    match base_type(&c.data_type) {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => "BIGINT",
        DataType::UInt64 => "NUMERIC(20)",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "DOUBLE PRECISION",
        DataType::Boolean => "BOOLEAN",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => "TEXT",
        DataType::Date32 => "DATE",
        DataType::Date64 | DataType::Timestamp(_, _) => "TIMESTAMPTZ",
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => "NUMERIC",
        _ => "JSONB",
    }
}

/// Makes sure the table has every typed column of `schema` and returns its columns.
/// `known` is the sink's cached column set; when it already covers the batch nothing is
/// asked of the database.
pub(crate) async fn ensure_table(
    conn: &mut PgConnection,
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
    lock_ddl(conn).await?;
    let existing = table_columns(conn, table).await?;
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
    let ddl = match existing {
        None => {
            create_schema(conn, table).await?;
            let mut defs: Vec<String> = missing
                .iter()
                .map(|c| format!("{} {}", quote_ident(&c.name), pg_type(c)))
                .collect();
            if !primary_key.is_empty() {
                defs.push(format!(
                    "PRIMARY KEY ({})",
                    quote_list(primary_key.iter().map(String::as_str))
                ));
            }
            format!(
                "CREATE TABLE IF NOT EXISTS {} ({})",
                table.quoted(),
                defs.join(", ")
            )
        }
        Some(_) => {
            let adds: Vec<String> = missing
                .iter()
                .map(|c| {
                    format!(
                        "ADD COLUMN IF NOT EXISTS {} {}",
                        quote_ident(&c.name),
                        pg_type(c)
                    )
                })
                .collect();
            format!("ALTER TABLE {} {}", table.quoted(), adds.join(", "))
        }
    };
    sqlx::query(&ddl)
        .execute(&mut *conn)
        .await
        .map_err(err("creating or altering the target table"))?;
    let mut all = found;
    all.extend(missing.into_iter().map(|c| c.name));
    Ok(all)
}

/// The table's columns, or `None` if it does not exist (resolved like the DML resolves
/// it: through `search_path` when unqualified).
async fn table_columns(
    conn: &mut PgConnection,
    table: &TableName,
) -> Result<Option<HashSet<String>>, SinkError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table.quoted())
        .fetch_one(&mut *conn)
        .await
        .map_err(err("looking up the target table"))?;
    if !exists {
        return Ok(None);
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
    )
    .bind(table.quoted())
    .fetch_all(&mut *conn)
    .await
    .map_err(err("reading the target table's columns"))?;
    Ok(Some(names.into_iter().collect()))
}

/// `CREATE SCHEMA` for a qualified name whose schema is missing. Checked first because
/// `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege even when the schema exists.
async fn create_schema(conn: &mut PgConnection, table: &TableName) -> Result<(), SinkError> {
    let Some(schema) = &table.schema else {
        return Ok(());
    };
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await
            .map_err(err("looking up the schema"))?;
    if !exists {
        sqlx::query(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))
        .execute(&mut *conn)
        .await
        .map_err(err("creating the schema"))?;
    }
    Ok(())
}
