//! Bulk load for PostgreSQL: rows → CSV → `COPY` into a temporary staging table →
//! one `INSERT … SELECT` (append) or `INSERT … SELECT … ON CONFLICT DO UPDATE` (merge) into
//! the target, all inside the commit transaction. Naive timestamps are read as UTC
//! (`SET LOCAL TimeZone`).
//!
//! The staging table is `CREATE TEMP TABLE … AS SELECT <batch columns> FROM target WITH NO
//! DATA`: it has the target's column types (so COPY parses the CSV text into them and bad
//! values fail with PostgreSQL's message) but none of its constraints, defaults or identity
//! columns, which the staging rows do not need. It is dropped at commit or rollback.

use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::{err, PostgresDialect};
use crate::sink::sql::dialect::Load;
use crate::sink::sql::table::{quote_list, upsert_clause, Column, TableName, ValueKind};
use crate::sink::SinkError;

const STAGE: &str = "pg_temp.\"_apitap_stage\"";

/// CSV as `COPY … (FORMAT csv)` reads it: NULL is an empty unquoted field, every string
/// is quoted (so an empty string stays distinct from NULL and `\.` can never end the
/// data), nested values are their JSON text.
fn to_csv(rows: &[Map<String, Value>], columns: &[Column]) -> Vec<u8> {
    let mut out = String::with_capacity(rows.len() * columns.len() * 8);
    for row in rows {
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match (c.kind, row.get(&c.name)) {
                (_, None | Some(Value::Null)) => {}
                (ValueKind::JsonValue, Some(v)) => quote(&mut out, &v.to_string()),
                (_, Some(Value::String(s))) => quote(&mut out, s),
                (_, Some(Value::Number(n))) => out.push_str(&n.to_string()),
                (_, Some(Value::Bool(b))) => out.push_str(if *b { "true" } else { "false" }),
                (_, Some(v)) => quote(&mut out, &v.to_string()),
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn quote(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
}

impl Load for PostgresDialect {
    /// Stages `rows` and moves them into `table`.
    async fn load(
        conn: &mut PgConnection,
        table: &TableName,
        columns: &[Column],
        rows: &[Map<String, Value>],
        primary_key: &[String],
    ) -> Result<(), SinkError> {
        sqlx::query("SET LOCAL TimeZone = 'UTC'")
            .execute(&mut *conn)
            .await
            .map_err(err("setting the time zone"))?;
        let csv = to_csv(rows, columns);
        let cols = quote_list(columns.iter().map(|c| c.name.as_str()));
        let stage = format!(
            "CREATE TEMP TABLE \"_apitap_stage\" ON COMMIT DROP AS SELECT {cols} FROM {} WITH NO DATA",
            table.quoted()
        );
        sqlx::query(&stage)
            .execute(&mut *conn)
            .await
            .map_err(err("creating the staging table"))?;

        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {STAGE} ({cols}) FROM STDIN WITH (FORMAT csv)"
            ))
            .await
            .map_err(err("starting COPY"))?;
        if let Err(e) = copy.send(csv).await {
            let _ = copy.abort("send failed").await;
            return Err(err("sending COPY data")(e));
        }
        copy.finish().await.map_err(err("loading rows (COPY)"))?;

        let insert = if primary_key.is_empty() {
            format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {STAGE}",
                table.quoted()
            )
        } else {
            // One row per key, the last one of the page, as if the rows were upserted in order
            // (a plain ON CONFLICT would fail on a key that occurs twice in one statement).
            let keys = quote_list(primary_key.iter().map(String::as_str));
            format!(
                "INSERT INTO {} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM {STAGE} \
                 ORDER BY {keys}, ctid DESC{}",
                table.quoted(),
                upsert_clause(columns, primary_key)
            )
        };
        sqlx::query(&insert)
            .execute(&mut *conn)
            .await
            .map_err(err("moving staged rows into the target table"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::DataType;
    use serde_json::json;

    use super::*;

    fn col(name: &str, kind: ValueKind) -> Column {
        Column {
            name: name.into(),
            index: 0,
            data_type: DataType::Utf8,
            kind,
        }
    }

    #[test]
    fn csv_quotes_strings_and_leaves_null_empty() {
        let columns = vec![
            col("s", ValueKind::Scalar),
            col("n", ValueKind::Scalar),
            col("j", ValueKind::JsonValue),
            col("t", ValueKind::JsonText),
        ];
        let rows: Vec<Map<String, Value>> = vec![
            json!({"s": "a \"q\", b\nc", "n": 1.5, "j": {"k": "v"}, "t": "[1]"}),
            json!({"s": "", "j": "x"}),
        ]
        .into_iter()
        .map(|v| v.as_object().cloned().unwrap_or_default())
        .collect();
        let csv = String::from_utf8(to_csv(&rows, &columns)).unwrap();
        assert_eq!(
            csv,
            "\"a \"\"q\"\", b\nc\",1.5,\"{\"\"k\"\":\"\"v\"\"}\",\"[1]\"\n\"\",,\"\"\"x\"\"\",\n"
        );
    }
}
