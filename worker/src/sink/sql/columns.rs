//! The schema-evolution limits: a table grows a column for every new key of the records,
//! so an API that sends ever-changing keys (ids as keys, a hostile upstream) would grow it
//! until the database refuses every load (PostgreSQL stops at 1,600 columns). Checked
//! before any DDL, so a batch over a limit changes nothing.

use apitap_common::limits::{
    DEFAULT_MAX_NEW_COLUMNS, DEFAULT_MAX_TABLE_COLUMNS, MAX_IDENTIFIER_BYTES,
};

use crate::sink::SinkError;

/// The limits of one sink table (`spec.sink.<sink>.max_columns`, `.max_new_columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColumnLimits {
    pub max_columns: usize,
    pub max_new_columns: usize,
    /// PostgreSQL truncates longer identifiers (and two long keys could then collide);
    /// `None` for databases without such a limit.
    pub max_identifier_bytes: Option<usize>,
}

impl ColumnLimits {
    pub(crate) fn new(
        max_columns: Option<usize>,
        max_new_columns: Option<usize>,
        identifiers: bool,
    ) -> Self {
        Self {
            max_columns: max_columns.unwrap_or(DEFAULT_MAX_TABLE_COLUMNS),
            max_new_columns: max_new_columns.unwrap_or(DEFAULT_MAX_NEW_COLUMNS),
            max_identifier_bytes: identifiers.then_some(MAX_IDENTIFIER_BYTES),
        }
    }

    /// `Err` (a user error naming the limit) when adding `new` columns to a table of
    /// `existing` columns breaks a limit.
    pub(crate) fn check(
        &self,
        table: &str,
        existing: usize,
        new: &[&str],
    ) -> Result<(), SinkError> {
        let refuse = |limit: &str, message: String, fix: &str| {
            tracing::warn!(
                table,
                limit,
                existing,
                new = new.len(),
                "limit {limit}: batch refused"
            );
            Err(SinkError::User(format!(
                "table {table}: {message}, over the limit {limit}; {fix}"
            )))
        };
        if let Some(max) = self.max_identifier_bytes {
            if let Some(long) = new.iter().find(|n| n.len() > max) {
                let shown: String = long.chars().take(40).collect();
                return refuse(
                    "max_identifier_bytes",
                    format!(
                        "the column {shown:?}... is {} bytes, PostgreSQL allows {max}",
                        long.len()
                    ),
                    "rename the key in spec.transform.sql (SELECT \"long key\" AS short_name)",
                );
            }
        }
        // `max_new_columns: 0`: the table keeps the columns it was created with (the first
        // batch, `existing == 0`, creates it within `max_columns`).
        if self.max_new_columns == 0 && existing > 0 && !new.is_empty() {
            return refuse(
                "max_new_columns",
                format!(
                    "the batch has {} keys the table has no column for ({}{}), and the table \
                     takes no new columns",
                    new.len(),
                    new.iter().take(3).copied().collect::<Vec<_>>().join(", "),
                    if new.len() > 3 { ", ..." } else { "" }
                ),
                "select only the table's columns in spec.transform.sql, or allow new columns \
                 with spec.sink.<sink>.max_new_columns (at least 1)",
            );
        }
        if self.max_new_columns > 0 && new.len() > self.max_new_columns {
            return refuse(
                "max_new_columns",
                format!(
                    "the batch would add {} new columns, at most {} may be added at once",
                    new.len(),
                    self.max_new_columns
                ),
                "select the columns you need in spec.transform.sql, or raise \
                 spec.sink.<sink>.max_new_columns",
            );
        }
        if existing + new.len() > self.max_columns {
            return refuse(
                "max_columns",
                format!(
                    "the table would have {} columns, at most {} are allowed",
                    existing + new.len(),
                    self.max_columns
                ),
                "select the columns you need in spec.transform.sql, or raise \
                 spec.sink.<sink>.max_columns (at most 1600)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_themselves_and_how_to_raise_them() {
        let l = ColumnLimits::new(None, None, true);
        assert_eq!((l.max_columns, l.max_new_columns), (500, 100));
        let names: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(l.check("t", 0, &refs[..100]).is_ok());
        let e = l.check("t", 0, &refs[..101]).unwrap_err().to_string();
        assert!(
            e.contains("max_new_columns") && e.contains("101 new columns"),
            "{e}"
        );
        let e = l.check("t", 450, &refs[..51]).unwrap_err().to_string();
        assert!(
            e.contains("limit max_columns") && e.contains("501 columns"),
            "{e}"
        );
        assert!(l.check("t", 450, &refs[..50]).is_ok());

        let long = "x".repeat(64);
        let e = l.check("t", 0, &[&long]).unwrap_err().to_string();
        assert!(
            e.contains("max_identifier_bytes") && e.contains("64 bytes"),
            "{e}"
        );
        assert!(l.check("t", 0, &[&"x".repeat(63)]).is_ok());
        // SQLite has no identifier limit.
        assert!(ColumnLimits::new(None, None, false)
            .check("t", 0, &[&long])
            .is_ok());
        let raised = ColumnLimits::new(Some(1600), Some(1000), true);
        assert!(raised.check("t", 0, &refs).is_ok());
        // 0: no schema evolution; the first batch creates the table within max_columns.
        let frozen = ColumnLimits::new(None, Some(0), true);
        assert!(frozen.check("t", 0, &refs[..300]).is_ok());
        let e = frozen.check("t", 5, &["extra"]).unwrap_err().to_string();
        assert!(
            e.contains("takes no new columns")
                && e.contains("extra")
                && e.contains("max_new_columns"),
            "{e}"
        );
        assert!(frozen.check("t", 5, &[]).is_ok());
    }
}
