use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::*;
use crate::sink::sql::suite::{batch, temporal_page};
use crate::sink::sql::table::{json_rows, write_columns};

/// The CSV of the batch's JSON rows, as the rows were written before the CSV was made from
/// the Arrow arrays: the reference the direct path must reproduce.
fn csv_of_json_rows(rows: &[Map<String, Value>], columns: &[Column]) -> String {
    let mut out = String::new();
    let quote = |out: &mut String, s: &str| {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    };
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
    out
}

fn both(b: &RecordBatch) -> (String, String) {
    let names: HashSet<String> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let columns = write_columns(&b.schema(), &names);
    let direct = String::from_utf8(to_csv(b, &columns).unwrap()).unwrap();
    let reference = csv_of_json_rows(&json_rows(b, &columns).unwrap(), &columns);
    (direct, reference)
}

#[test]
fn strings_are_quoted_and_null_is_empty() {
    let b = batch(json!([
        {"s": "a \"q\", b\nc", "n": 1.5, "j": {"k": "v"}, "t": ["x", 1]},
        {"s": "", "n": null, "b": true}
    ]));
    let (direct, reference) = both(&b);
    assert_eq!(direct, reference);
    assert!(direct.contains("\"a \"\"q\"\", b\nc\""), "{direct}");
    assert!(
        direct.starts_with(",,\"\",,true\n") || direct.contains("\n,,\"\",,true\n"),
        "an empty string and NULLs: {direct}"
    );
}

#[tokio::test]
async fn every_type_is_written_as_its_json_row_holds_it() {
    let pages = [
        // The mock API's shape: integers, floats, booleans, strings, a list, an object.
        json!([
            {"id": 1, "userName": "user-000001", "score": 37.25, "active": true,
             "createdAt": "2026-01-01T00:01:00Z", "tags": ["t1", "g1"],
             "address": {"city": "Oslo", "zip": "00013"}},
            {"id": 5, "userName": "user-000005", "score": 5, "active": false,
             "createdAt": "2026-01-01T00:05:00Z", "tags": [],
             "address": {"city": "Lima", "zip": "00065"}}
        ]),
    ];
    for page in pages {
        let (direct, reference) = both(&batch(page));
        assert_eq!(direct, reference);
    }
    let (direct, reference) = both(&temporal_page().await);
    assert_eq!(direct, reference, "timestamps and dates");
}

/// Floats in exponent form are spelled as arrow_json spells them (`1.0e21`, where the JSON
/// rows said `1e+21`): the same shortest round-trip digits, read by PostgreSQL as the same
/// double. An irregular column is its JSON text; a column null in every row is NULL.
#[test]
fn exponents_irregular_columns_and_null_columns() {
    let b = batch(json!([
        {"v": {"x": 1}, "big": 9007199254740993_u64, "neg": -0.5, "none": null},
        {"v": "plain", "big": 1, "neg": -1e-7},
        {"v": [1, 2], "big": 2, "neg": 1e21}
    ]));
    let (direct, _) = both(&b);
    assert_eq!(
        direct,
        "9007199254740993,-0.5,,\"{\"\"x\"\":1}\"\n\
         1,-1.0e-7,,\"\"\"plain\"\"\"\n\
         2,1.0e21,,\"[1,2]\"\n"
    );
    for text in ["-1.0e-7", "1.0e21"] {
        let reference = if text == "1.0e21" { "1e+21" } else { "-1e-7" };
        assert_eq!(
            text.parse::<f64>().unwrap(),
            reference.parse::<f64>().unwrap()
        );
    }
}
