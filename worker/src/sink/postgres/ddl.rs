//! PostgreSQL's DDL: Arrow types to column types, the advisory lock that serializes
//! ApiTap's DDL in one database, and the catalog look-ups schema evolution needs
//! (`crate::sink::sql::ddl` decides what to create). DDL is transactional in PostgreSQL,
//! so a failed page takes its new columns with it.

use std::collections::HashSet;

use sqlx::PgConnection;

use super::PostgresDialect;
use crate::sink::sql::dialect::{Ddl, Dialect};
use crate::sink::sql::table::{quote_ident, Column, TableName, TypeClass};
use crate::sink::SinkError;

/// Advisory lock key serializing ApiTap's DDL in one database ("apitap" in ASCII).
const DDL_LOCK_KEY: i64 = 0x6170_6974_6170;

impl Ddl for PostgresDialect {
    fn column_type(c: &Column, _key: bool) -> &'static str {
        match TypeClass::of(c) {
            TypeClass::Integer => "BIGINT",
            TypeClass::BigUnsigned => "NUMERIC(20)",
            TypeClass::Float => "DOUBLE PRECISION",
            TypeClass::Boolean => "BOOLEAN",
            TypeClass::Text => "TEXT",
            TypeClass::Date => "DATE",
            TypeClass::Timestamp => "TIMESTAMPTZ",
            TypeClass::Decimal => "NUMERIC",
            TypeClass::Json => "JSONB",
        }
    }

    /// A transaction-scoped advisory lock.
    async fn lock_ddl(conn: &mut PgConnection) -> Result<(), SinkError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(DDL_LOCK_KEY)
            .execute(conn)
            .await
            .map_err(Self::err("taking the DDL lock"))?;
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
            .map_err(Self::err("looking up the target table"))?;
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
        .map_err(Self::err("reading the target table's columns"))?;
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
                .map_err(Self::err("looking up the schema"))?;
        if !exists {
            let ddl = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
            sqlx::query(&ddl)
                .execute(&mut *conn)
                .await
                .map_err(Self::err("creating the schema"))?;
        }
        Ok(())
    }
}
