//! PostgreSQL's DDL: Arrow types to column types, the advisory lock that serializes
//! ApiTap's DDL in one database, and the catalog look-ups schema evolution needs
//! (`crate::sink::sql::ddl` decides what to create). DDL is transactional in PostgreSQL,
//! so a failed page takes its new columns with it.

use std::collections::HashSet;

use arrow::datatypes::DataType;
use sqlx::PgConnection;

use super::{err, PostgresDialect};
use crate::sink::sql::dialect::Ddl;
use crate::sink::sql::table::{base_type, quote_ident, Column, TableName, ValueKind};
use crate::sink::SinkError;

/// Advisory lock key serializing ApiTap's DDL in one database ("apitap" in ASCII).
const DDL_LOCK_KEY: i64 = 0x6170_6974_6170;

impl Ddl for PostgresDialect {
    fn column_type(c: &Column) -> &'static str {
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

    /// One `ALTER TABLE` for all the new columns; `IF NOT EXISTS` because a column added
    /// by hand since the catalog was read is not an error.
    fn add_columns(table: &TableName, definitions: &[String]) -> Vec<String> {
        let adds: Vec<String> = definitions
            .iter()
            .map(|d| format!("ADD COLUMN IF NOT EXISTS {d}"))
            .collect();
        vec![format!(
            "ALTER TABLE {} {}",
            table.quoted(),
            adds.join(", ")
        )]
    }

    /// A transaction-scoped advisory lock.
    async fn lock_ddl(conn: &mut PgConnection) -> Result<(), SinkError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(DDL_LOCK_KEY)
            .execute(conn)
            .await
            .map_err(err("taking the DDL lock"))?;
        Ok(())
    }

    /// Resolved like the DML resolves the name: through `search_path` when unqualified.
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

    /// Checked first because `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege even
    /// when the schema exists.
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
            let ddl = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
            sqlx::query(&ddl)
                .execute(&mut *conn)
                .await
                .map_err(err("creating the schema"))?;
        }
        Ok(())
    }
}
