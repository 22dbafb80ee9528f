//! Pieces every SQL dialect shares: table names and identifier quoting, which batch columns
//! get written (and how their values are encoded), and the batch → JSON rows conversion
//! that the row loaders (PostgreSQL's CSV encoder, SQLite's binder) read from.

use std::collections::HashSet;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use crate::sink::SinkError;
use crate::transform::is_json_text;

/// Quotes an identifier exactly as named (camelCase and odd characters preserved).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a column list: `"a", "b"`.
pub(crate) fn quote_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `table` or `schema.table` from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// An unqualified name, such as one of ApiTap's own tables.
    pub fn plain(name: &str) -> Self {
        Self {
            schema: None,
            name: name.to_string(),
        }
    }

    pub fn parse(s: &str) -> Result<Self, SinkError> {
        let parts: Vec<&str> = s.split('.').collect();
        let bad = || {
            SinkError::User(format!(
                "invalid table name {s:?}: use table or schema.table"
            ))
        };
        match parts.as_slice() {
            [name] if !name.is_empty() => Ok(Self {
                schema: None,
                name: name.to_string(),
            }),
            [schema, name] if !schema.is_empty() && !name.is_empty() => Ok(Self {
                schema: Some(schema.to_string()),
                name: name.to_string(),
            }),
            _ => Err(bad()),
        }
    }

    /// Each part quoted: `"analytics"."users"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// Numbers, booleans, strings, dates, timestamps, decimals: written as the value.
    Scalar,
    /// A string column that already holds JSON text (declared `json`, irregular source
    /// column): written as is into a JSON/TEXT column.
    JsonText,
    /// Struct, list, map and any other type: written as the value's JSON text.
    JsonValue,
}

/// One batch column that will be written.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub index: usize,
    pub data_type: DataType,
    pub kind: ValueKind,
}

/// The type that decides the column type: dictionaries count as their values.
pub(crate) fn base_type(dt: &DataType) -> &DataType {
    match dt {
        DataType::Dictionary(_, value) => base_type(value),
        other => other,
    }
}

/// The kind of table column a batch column needs; each dialect names its type for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeClass {
    /// Signed integers, and unsigned ones up to 32 bits.
    Integer,
    /// 64-bit unsigned integers, which a signed 64-bit column cannot hold.
    BigUnsigned,
    Float,
    Boolean,
    /// Strings, and columns that are null in every row so far.
    Text,
    Date,
    Timestamp,
    Decimal,
    /// Nested values (and any other type), stored as JSON.
    Json,
}

impl TypeClass {
    pub fn of(c: &Column) -> Self {
        if c.kind != ValueKind::Scalar {
            return TypeClass::Json;
        }
        match base_type(&c.data_type) {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => TypeClass::Integer,
            DataType::UInt64 => TypeClass::BigUnsigned,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => TypeClass::Float,
            DataType::Boolean => TypeClass::Boolean,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                TypeClass::Text
            }
            DataType::Date32 => TypeClass::Date,
            DataType::Date64 | DataType::Timestamp(_, _) => TypeClass::Timestamp,
            DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => TypeClass::Decimal,
            _ => TypeClass::Json,
        }
    }
}

fn value_kind(field: &Field) -> ValueKind {
    let dt = base_type(field.data_type());
    let stringy = matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if stringy && is_json_text(field) {
        return ValueKind::JsonText;
    }
    let scalar = dt.is_integer()
        || dt.is_floating()
        || stringy
        || matches!(
            dt,
            DataType::Null
                | DataType::Boolean
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(_, _)
                | DataType::Decimal128(_, _)
                | DataType::Decimal256(_, _)
        );
    if scalar {
        ValueKind::Scalar
    } else {
        ValueKind::JsonValue
    }
}

/// Names of the batch columns that need a table column: all but `Null`-typed ones (a
/// column that is null in every row of the page has no type yet; it is created when a
/// later page gives it one).
pub(crate) fn needed_columns(schema: &Schema) -> Vec<&str> {
    schema
        .fields()
        .iter()
        .filter(|f| f.data_type() != &DataType::Null)
        .map(|f| f.name().as_str())
        .collect()
}

/// The batch columns to write into a table that has `existing` columns (after any DDL):
/// typed columns, plus all-null columns the table already has.
pub(crate) fn write_columns(schema: &Schema, existing: &HashSet<String>) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.data_type() != &DataType::Null || existing.contains(f.name()))
        .map(|(index, f)| Column {
            name: f.name().clone(),
            index,
            data_type: f.data_type().clone(),
            kind: value_kind(f),
        })
        .collect()
}

/// Checks what the database would reject less clearly (or not at all): column names with a
/// control character (a NUL ends a name in SQLite and breaks a PostgreSQL statement; JSON
/// keys become column names as they are), duplicate output names, and (merge mode)
/// primary-key columns missing from the rows.
pub(crate) fn check_batch(schema: &Schema, primary_key: &[String]) -> Result<(), SinkError> {
    let mut seen = HashSet::new();
    for f in schema.fields() {
        if let Some(c) = f.name().chars().find(|c| c.is_control()) {
            return Err(SinkError::User(format!(
                "the column {:?} contains the control character {c:?}; rename it in \
                 transform.sql (`SELECT \"...\" AS name`) or fix the upstream's key",
                f.name()
            )));
        }
        if !seen.insert(f.name().as_str()) {
            return Err(SinkError::User(format!(
                "the transform outputs the column {:?} twice; alias one of them",
                f.name()
            )));
        }
    }
    let typed: HashSet<&str> = needed_columns(schema).into_iter().collect();
    for k in primary_key {
        if !typed.contains(k.as_str()) {
            return Err(SinkError::User(format!(
                "primary key column {k:?} is missing from the transformed rows \
                 (or is null in every row); select it in transform.sql"
            )));
        }
    }
    Ok(())
}

/// The `ON CONFLICT` clause of a merge: update every non-key column from the new row
/// (`excluded` works in both PostgreSQL and SQLite); `DO NOTHING` when all columns are keys.
pub(crate) fn upsert_clause(columns: &[Column], primary_key: &[String]) -> String {
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !primary_key.contains(&c.name))
        .map(|c| format!("{0} = excluded.{0}", quote_ident(&c.name)))
        .collect();
    let keys = quote_list(primary_key.iter().map(String::as_str));
    if updates.is_empty() {
        format!(" ON CONFLICT ({keys}) DO NOTHING")
    } else {
        format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", updates.join(", "))
    }
}

/// The `columns` of `batch` as JSON objects (null values are absent keys). Dates and
/// timestamps become ISO-8601 strings, nested values JSON objects/arrays.
pub(crate) fn json_rows(
    batch: &RecordBatch,
    columns: &[Column],
) -> Result<Vec<Map<String, Value>>, SinkError> {
    let indices: Vec<usize> = columns.iter().map(|c| c.index).collect();
    let projected = batch
        .project(&indices)
        .map_err(|e| SinkError::Internal(format!("projecting the batch: {e}")))?;
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    writer
        .write(&projected)
        .and_then(|_| writer.finish())
        .map_err(|e| SinkError::User(format!("cannot encode the rows for the sink: {e}")))?;
    let buf = writer.into_inner();
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf)
        .map_err(|e| SinkError::Internal(format!("re-reading encoded rows: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_parse_and_quote() {
        assert_eq!(TableName::parse("users").unwrap().quoted(), "\"users\"");
        assert_eq!(
            TableName::parse("analytics.userEvents").unwrap().quoted(),
            "\"analytics\".\"userEvents\""
        );
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse(".b").is_err());
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn a_column_name_with_a_control_character_is_refused_by_name() {
        let schema = Schema::new(vec![Field::new("a\u{0}b", DataType::Utf8, true)]);
        let err = check_batch(&schema, &[])
            .expect_err("NUL in a name")
            .to_string();
        assert!(err.contains("control character '\\0'"), "{err}");
        let fine = Schema::new(vec![Field::new("naïve key", DataType::Utf8, true)]);
        assert!(check_batch(&fine, &[]).is_ok());
    }
}
