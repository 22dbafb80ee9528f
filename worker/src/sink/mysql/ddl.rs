//! MySQL's DDL: Arrow types to column types and the catalog look-ups schema evolution needs
//! (`crate::sink::sql::ddl` decides what to create). Every statement is idempotent
//! (`IF NOT EXISTS`, as MariaDB writes it), so workers that add the same column at once
//! need no lock: the DDL runs outside the fenced transaction, where a lock could not be
//! tied to the transaction's end anyway.

use std::collections::HashSet;

use sqlx::MySqlConnection;

use super::MysqlDialect;
use crate::sink::sql::dialect::{Ddl, Dialect};
use crate::sink::sql::table::{quote_ident, Column, TableName, TypeClass};
use crate::sink::SinkError;

impl Ddl for MysqlDialect {
    fn column_type(c: &Column, key: bool) -> &'static str {
        match TypeClass::of(c) {
            TypeClass::Integer => "BIGINT",
            TypeClass::BigUnsigned => "BIGINT UNSIGNED",
            TypeClass::Float => "DOUBLE",
            TypeClass::Boolean => "BOOLEAN",
            // A key column must have a bounded length to be indexed.
            TypeClass::Text if key => "VARCHAR(255)",
            TypeClass::Text => "LONGTEXT",
            TypeClass::Date => "DATE",
            TypeClass::Timestamp => "DATETIME(6)",
            TypeClass::Decimal => "DECIMAL(65, 30)",
            TypeClass::Json => "JSON",
        }
    }

    /// See the module head: idempotent DDL needs no lock.
    async fn lock_ddl(_conn: &mut MySqlConnection) -> Result<(), SinkError> {
        Ok(())
    }

    /// A MySQL table has at least one column, so no columns means no table. An
    /// unqualified name is in the connection's database.
    async fn table_columns(
        conn: &mut MySqlConnection,
        table: &TableName,
    ) -> Result<Option<HashSet<String>>, SinkError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns
             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?",
        )
        .bind(table.schema.as_deref())
        .bind(&table.name)
        .fetch_all(conn)
        .await
        .map_err(Self::err("reading the table's columns"))?;
        Ok((!names.is_empty()).then(|| names.into_iter().collect()))
    }

    /// A qualified name's schema is a database on the same server.
    async fn create_schema(conn: &mut MySqlConnection, table: &TableName) -> Result<(), SinkError> {
        let Some(schema) = &table.schema else {
            return Ok(());
        };
        let ddl = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(schema));
        sqlx::query(&ddl)
            .execute(conn)
            .await
            .map_err(Self::err("creating the database"))?;
        Ok(())
    }
}
