//! Each limit of [`crate::limits`] at its edge: the maximum passes, one more is rejected
//! with the limit's name, the value seen, the maximum and the place in the file.

use super::*;
use crate::limits::{Limits, MAX_SHARDS};
use crate::shard::{self, ExpandError};

/// A spec whose `spec.source.http` ends the text, so tests can append keys to it.
const HEAD: &str = "apiVersion: apitap/v1
kind: Pipeline
metadata:
  name: users
spec:
  sink:
    sqlite: { path: ./out.db, table: users }
  source:
    http:
      url: https://api.example.com/v1/users
";

fn errors(text: &str) -> Vec<String> {
    match load("f.yaml", text, None) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// The one error of `text`, which must start with `start` and contain `part`.
fn one_error(text: &str, start: &str, part: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with(start), "{}", errors[0]);
    assert!(errors[0].contains(part), "{}", errors[0]);
    errors[0].clone()
}

fn map(key: &str, n: usize) -> String {
    let entries: Vec<String> = (0..n).map(|i| format!("k{i}: v")).collect();
    format!("{HEAD}      {key}: {{ {} }}\n", entries.join(", "))
}

#[test]
fn headers_and_query_parameters_are_counted() {
    assert!(errors(&map("headers", 64)).is_empty());
    one_error(
        &map("headers", 65),
        "f.yaml:11:7: spec.source.http.headers: 65 headers, over the limit max_headers of 64 headers",
        "hint: send fewer headers",
    );
    assert!(errors(&map("query", 64)).is_empty());
    one_error(
        &map("query", 65),
        "f.yaml:11:7: spec.source.http.query: 65 query parameters, over the limit max_query_params of 64",
        "hint: send fewer query parameters",
    );
}

#[test]
fn long_strings_are_rejected_with_their_length() {
    let url = format!("https://api.example.com/{}", "a".repeat(9000));
    one_error(
        &HEAD.replace("https://api.example.com/v1/users", &url),
        "f.yaml:10:7: spec.source.http.url: the URL is 9024 bytes, over the limit max_url_bytes of 8192 bytes",
        "hint: shorten the URL",
    );
    let value = "v".repeat(8193);
    one_error(
        &format!("{HEAD}      headers: {{ X-Big: {value} }}\n"),
        "f.yaml:11:18: spec.source.http.headers.X-Big: the value is 8193 bytes, over the limit max_value_bytes of 8192 bytes",
        "hint: shorten the value",
    );
    let sql = format!(
        "SELECT id FROM source WHERE name <> '{}'",
        "x".repeat(70_000)
    );
    one_error(
        &format!("{HEAD}  transform:\n    sql: \"{sql}\"\n"),
        "f.yaml:12:5: spec.transform.sql: the SQL is 70038 bytes, over the limit max_sql_bytes of 65536 bytes",
        "hint: shorten the query",
    );
}

fn with_values(n: usize) -> String {
    let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    format!(
        "{HEAD}  shards:\n    param: org\n    values: [{}]\n",
        values.join(", ")
    )
}

#[test]
fn shard_values_and_windows_are_counted_before_shards_are_made() {
    let p = load("f.yaml", &with_values(MAX_SHARDS as usize), None).unwrap();
    assert_eq!(shard::expand(&p.spec).unwrap().len(), MAX_SHARDS as usize);
    one_error(
        &with_values(MAX_SHARDS as usize + 1),
        "f.yaml:13:5: spec.shards.values: the values make 10001 shards, over the limit max_shards of 10000 shards",
        "hint: list at most 10000 values",
    );
    let window = format!("{HEAD}  shards:\n    param: day\n    window: {{ start: \"2026-01-01T00:00:00Z\", end: \"2026-02-01T00:00:00Z\", step: 1m }}\n");
    one_error(
        &window,
        "f.yaml:13:75: spec.shards.window.step: the window makes 44640 shards, over the limit max_shards of 10000 shards",
        "hint: use a step of at least 268s, or a shorter window",
    );
    assert!(errors(&window.replace("step: 1m", "step: 268s")).is_empty());
}

#[test]
fn other_limits_can_be_passed_in() {
    let limits = Limits {
        max_shards: 2,
        ..Limits::default()
    };
    let text = with_values(3);
    let e = load_with("f.yaml", &text, None, &limits)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the values make 3 shards, over the limit max_shards of 2 shards"),
        "{e}"
    );
    // A spec accepted under larger limits is still refused when its shards are made.
    let p = load("f.yaml", &text, None).unwrap();
    match shard::expand_with(&p.spec, &limits) {
        Err(ExpandError::TooMany { path, error }) => {
            assert_eq!(path, "spec.shards.values");
            assert_eq!(error.limit, "max_shards");
        }
        other => panic!("{other:?}"),
    }
    let small = Limits {
        max_document_bytes: 100,
        ..Limits::default()
    };
    let e = load_with("f.yaml", HEAD, None, &small)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "f.yaml: the document is {} bytes, over the limit max_document_bytes of 100 bytes",
            HEAD.len()
        )),
        "{e}"
    );
}

#[test]
fn alias_bombs_are_stopped_and_small_aliases_still_work() {
    // Deep: eight levels of ten aliases (10^8 nodes); the node budget stops it at the
    // first node over, while the parser replays the last anchor's aliases.
    let mut deep = format!("{HEAD}      query:\n        a0: &a0 [x]\n");
    for i in 1..=8 {
        let items = vec![format!("*a{}", i - 1); 10].join(", ");
        deep.push_str(&format!("        a{i}: &a{i} [{items}]\n"));
    }
    let started = std::time::Instant::now();
    one_error(
        &deep,
        "f.yaml:17:",
        "the document holds more than 50000 YAML nodes once its aliases (*name) are expanded, over the limit max_yaml_nodes of 50000 nodes\n  hint: write the values out instead of repeating anchors",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Wide: one anchor of 1,000 items aliased 1,000 times; the node budget stops it.
    let items = vec!["v"; 1_000].join(", ");
    let aliases = vec!["*v"; 1_000].join(", ");
    let wide = format!("{HEAD}      query:\n        a: &v [{items}]\n        b: [{aliases}]\n");
    one_error(
        &wide,
        "f.yaml:13:",
        "the document holds more than 50000 YAML nodes once its aliases (*name) are expanded, over the limit max_yaml_nodes of 50000 nodes",
    );
    // Long: a 5,000-byte value aliased 300 times stays under the node budget but is 1.5 MB
    // of text; the scalar budget stops it, and is a knob like the others.
    let long = format!(
        "{HEAD}      query:\n        a: &v {}\n        b: [{}]\n",
        "x".repeat(5_000),
        vec!["*v"; 300].join(", ")
    );
    one_error(
        &long,
        "f.yaml:13:",
        "the document holds more than 1048576 bytes of text once its aliases (*name) are expanded, over the limit max_yaml_scalar_bytes of 1048576 bytes",
    );
    let roomy = Limits {
        max_yaml_scalar_bytes: 2 * 1024 * 1024,
        ..Limits::default()
    };
    let e = load_with("f.yaml", &long, None, &roomy)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("max_yaml_scalar_bytes"), "{e}");
    // `<<` is an ordinary key (YAML 1.1 merge keys are not applied), as before.
    let merge = format!("{HEAD}      query: &q {{ a: x }}\n      headers: {{ <<: *q }}\n");
    one_error(
        &merge,
        "f.yaml:12:",
        "spec.source.http.headers.<<: invalid type: map, expected a string",
    );
    let fine = format!("{HEAD}      query: {{ a: &v x }}\n      headers: {{ X-A: *v }}\n");
    let p = load("f.yaml", &fine, None).unwrap();
    assert_eq!(p.spec.source.http.headers["X-A"], "x");
}

#[test]
fn upstream_knobs_must_be_within_their_ceilings() {
    let ok = load(
        "f.yaml",
        &format!("{HEAD}      max_body_bytes: 1048576\n      follow: {{ cross_origin: true }}\n"),
        None,
    )
    .expect("valid knobs");
    assert_eq!(ok.spec.source.http.max_body_bytes(), 1048576);
    assert!(ok.spec.source.http.follow.cross_origin);
    let default = load("f.yaml", HEAD, None).unwrap();
    assert_eq!(
        default.spec.source.http.max_body_bytes(),
        crate::limits::DEFAULT_MAX_BODY_BYTES
    );

    one_error(
        &format!("{HEAD}      max_body_bytes: 0\n"),
        "",
        "spec.source.http.max_body_bytes",
    );
    one_error(
        &format!("{HEAD}      max_body_bytes: 2000000000\n"),
        "",
        "1073741824 bytes",
    );
    let cols = HEAD.replace(
        "sqlite: { path: ./out.db, table: users }",
        "sqlite: { path: ./out.db, table: users, max_columns: 5000 }",
    );
    let e = one_error(&cols, "", "spec.sink.sqlite.max_columns");
    assert!(e.contains("1600"), "{e}");
    // max_new_columns: 0 is the "no schema evolution" policy, not a mistake.
    let frozen = HEAD.replace(
        "sqlite: { path: ./out.db, table: users }",
        "sqlite: { path: ./out.db, table: users, max_new_columns: 0 }",
    );
    assert!(load("f.yaml", &frozen, None).is_ok());
    one_error(
        &HEAD.replace(
            "sqlite: { path: ./out.db, table: users }",
            "sqlite: { path: ./out.db, table: users, max_columns: 0 }",
        ),
        "",
        "must be at least 1",
    );
}

#[test]
fn shard_budgets_default_to_generous_finite_values_and_refuse_zero() {
    let default = load("f.yaml", HEAD, None).unwrap();
    let b = &default.spec.source.http.limits;
    assert_eq!(
        (b.max_pages(), b.max_records(), b.max_bytes()),
        (1_000_000, 100_000_000, 100 * 1024 * 1024 * 1024)
    );
    let set = load(
        "f.yaml",
        &format!("{HEAD}      limits: {{ max_pages: 3, max_records: 250, max_bytes: 4096 }}\n"),
        None,
    )
    .expect("valid budgets");
    let b = &set.spec.source.http.limits;
    assert_eq!(
        (b.max_pages(), b.max_records(), b.max_bytes()),
        (3, 250, 4096)
    );
    one_error(
        &format!("{HEAD}      limits: {{ max_records: 0 }}\n"),
        "",
        "spec.source.http.limits.max_records",
    );
    one_error(
        &format!("{HEAD}      limits: {{ max_rows: 1 }}\n"),
        "",
        "max_rows",
    );
}

#[test]
fn max_retry_after_defaults_to_and_stays_under_the_cluster_clamp() {
    let default = load("f.yaml", HEAD, None).unwrap();
    assert_eq!(
        default.spec.source.http.retry.max_retry_after,
        crate::limits::MAX_RETRY_AFTER_CEILING
    );
    let set = load(
        "f.yaml",
        &format!("{HEAD}      retry: {{ max_retry_after: 90s }}\n"),
        None,
    )
    .unwrap();
    assert_eq!(
        set.spec.source.http.retry.max_retry_after,
        std::time::Duration::from_secs(90)
    );
    one_error(
        &format!("{HEAD}      retry: {{ max_retry_after: 2h }}\n"),
        "f.yaml:",
        "spec.source.http.retry.max_retry_after: 7200s is above the ceiling of 3600s",
    );
}

#[test]
fn incremental_cursor_types_and_skew_parse() {
    let text = HEAD.replace(
        "  sink:",
        "  incremental: { cursor_field: ts, cursor_type: unix_millis, max_future_skew: 1h }\n  sink:",
    );
    let p = load("f.yaml", &text, None).expect("valid incremental");
    let inc = p.spec.incremental.unwrap();
    assert_eq!(inc.cursor_type, CursorType::UnixMillis);
    assert_eq!(inc.max_future_skew, std::time::Duration::from_secs(3600));
    let default = HEAD.replace("  sink:", "  incremental: { cursor_field: ts }\n  sink:");
    let inc = load("f.yaml", &default, None)
        .unwrap()
        .spec
        .incremental
        .unwrap();
    assert_eq!(inc.cursor_type, CursorType::Auto);
    assert_eq!(inc.max_future_skew, crate::limits::DEFAULT_MAX_FUTURE_SKEW);
    let bad = HEAD.replace(
        "  sink:",
        "  incremental: { cursor_field: ts, cursor_type: date }\n  sink:",
    );
    assert_eq!(errors(&bad).len(), 1);
}
