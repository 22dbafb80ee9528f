//! SQLite's DDL: Arrow types to column types (by affinity) and the catalog look-up schema
//! evolution needs (`crate::sink::sql::ddl` decides what to create). DDL is transactional
//! in SQLite, so a failed page takes its new columns with it.

use std::collections::HashSet;

use sqlx::SqliteConnection;

use super::SqliteDialect;
use crate::sink::sql::dialect::{Ddl, Dialect};
use crate::sink::sql::table::{Column, TableName, TypeClass};
use crate::sink::SinkError;

impl Ddl for SqliteDialect {
    /// By affinity; nested values are stored as JSON text.
    fn column_type(c: &Column, _key: bool) -> &'static str {
        match TypeClass::of(c) {
            TypeClass::Integer | TypeClass::BigUnsigned | TypeClass::Boolean => "INTEGER",
            TypeClass::Float => "REAL",
            TypeClass::Decimal => "NUMERIC",
            TypeClass::Text | TypeClass::Date | TypeClass::Timestamp | TypeClass::Json => "TEXT",
        }
    }

    /// SQLite adds one column per `ALTER TABLE`.
    fn add_columns(table: &TableName, definitions: &[String]) -> Vec<String> {
        definitions
            .iter()
            .map(|d| format!("ALTER TABLE {} ADD COLUMN {d}", table.quoted()))
            .collect()
    }

    /// `BEGIN IMMEDIATE` already holds the database's write lock.
    async fn lock_ddl(_conn: &mut SqliteConnection) -> Result<(), SinkError> {
        Ok(())
    }

    /// A SQLite table has at least one column, so no columns means no table. A qualified
    /// name's schema is the attached database's name.
    async fn table_columns(
        conn: &mut SqliteConnection,
        table: &TableName,
    ) -> Result<Option<HashSet<String>>, SinkError> {
        let schema = table.schema.as_deref().unwrap_or("main");
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1, ?2)")
            .bind(&table.name)
            .bind(schema)
            .fetch_all(conn)
            .await
            .map_err(Self::err("reading the table's columns"))?;
        Ok((!names.is_empty()).then(|| names.into_iter().collect()))
    }

    /// A qualified name's "schema" is an attached database, which ApiTap does not create.
    async fn create_schema(_conn: &mut SqliteConnection, _: &TableName) -> Result<(), SinkError> {
        Ok(())
    }
}
