use std::collections::BTreeMap;

use super::*;

const GOOD: &str = r#"
apiVersion: apitap/v1
kind: Pipeline
metadata:
  name: users
spec:
  source:
    http:
      url: "http://127.0.0.1:8080/v1/cursor"
      auth: { bearer: "${API_TOKEN}" }
      records: $.data
      pagination:
        kind: cursor
        cursor_path: $.next_cursor
        has_more_path: $.has_more
        size: 50
  transform:
    sql: SELECT id, "userName" FROM source
  sink:
    sqlite: { path: ./out.db, table: users }
"#;

fn env() -> BTreeMap<String, String> {
    BTreeMap::from([("API_TOKEN".to_string(), "s3cret".to_string())])
}

#[test]
fn a_good_spec_loads() {
    let p = load("good.yaml", GOOD, Some(&env())).unwrap();
    assert_eq!(p.name(), "users");
    assert_eq!(p.spec.source.http.pagination.kind, PaginationKind::Cursor);
    assert_eq!(p.spec.source.http.pagination.size(), 50);
    let resolved = secrets::resolve(&p, &env()).unwrap();
    assert_eq!(
        resolved.spec.source.http.auth.unwrap().bearer.unwrap(),
        "s3cret"
    );
    // The stored form keeps the reference, never the value.
    assert!(p.to_yaml().contains("${API_TOKEN}"));
    assert!(!p.to_yaml().contains("s3cret"));
}

/// Found while checking the fuzzer's hostile characters: a file saved with a UTF-8 byte
/// order mark (Windows editors do) was refused as "more than one YAML document".
#[test]
fn a_byte_order_mark_is_not_content() {
    let with_bom = format!("\u{feff}{GOOD}");
    assert_eq!(
        load("p.yaml", &with_bom, Some(&env())).unwrap(),
        load("p.yaml", GOOD, Some(&env())).unwrap()
    );
    let bad = format!("\u{feff}{}", GOOD.replace("size: 50", "size: -1"));
    let e = load("p.yaml", &bad, Some(&env())).unwrap_err().to_string();
    let line = GOOD.lines().position(|l| l.contains("size: 50")).unwrap() + 1;
    assert!(e.starts_with(&format!("p.yaml:{line}:")), "{e}");
}

#[test]
fn errors_name_the_place() {
    let bad = GOOD.replace("        size: 50\n", "        size: 50\n        pages: 3\n");
    let e = load("bad.yaml", &bad, Some(&env()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.yaml:17:"), "{e}");
    assert!(e.contains("unknown field `pages`"), "{e}");

    let e = load(
        "bad.yaml",
        &GOOD.replace("        cursor_path: $.next_cursor\n", ""),
        Some(&env()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("bad.yaml:12:"), "{e}");
    assert!(e.contains("needs `cursor_path`"), "{e}");

    let e = load("bad.yaml", GOOD, Some(&BTreeMap::new()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("API_TOKEN is not set"), "{e}");
    assert!(e.contains(":10:"), "{e}");
}

fn first_error(text: &str) -> String {
    load("f.yaml", text, Some(&env()))
        .unwrap_err()
        .0
        .remove(0)
        .to_string()
}

#[test]
fn a_bad_duration_names_its_key_and_line() {
    let bad = GOOD.replace(
        "        size: 50\n",
        "        size: 50\n      timeout: fast\n",
    );
    let e = first_error(&bad);
    assert!(
        e.starts_with("f.yaml:17:16: spec.source.http.timeout: invalid duration \"fast\""),
        "{e}"
    );
    let e = first_error(&GOOD.replace(
        "        size: 50\n",
        "        size: 50\n      timeout: 30\n",
    ));
    assert!(
        e.contains("30 has no time unit; add one, for example 30s"),
        "{e}"
    );
}

#[test]
fn yaml_errors_keep_the_useful_position() {
    let e = first_error(&GOOD.replace("  name: users\n", "  name: users\n  labels: [a\n"));
    assert!(e.starts_with("f.yaml:7:5:"), "{e}");
    assert!(
        e.contains("inside the flow sequence that starts at line 6 column 11"),
        "{e}"
    );

    let cases = [
        (
            GOOD.replace("kind: Pipeline\n", "kind: Pipeline\nkind: Pipeline\n"),
            "f.yaml:4:1: the key `kind` appears twice",
        ),
        (
            format!("{GOOD}---\n{GOOD}"),
            "f.yaml:21:1: the file holds more than one YAML document",
        ),
        (
            GOOD.replace("  name: users\n", "\tname: users\n"),
            "f.yaml:5:1: not valid YAML: the line is indented with a tab",
        ),
        (
            "# nothing here\n\n# still nothing\n".to_string(),
            "f.yaml: the file holds only comments",
        ),
    ];
    for (doc, expected) in cases {
        let e = first_error(&doc);
        assert!(e.starts_with(expected), "{e}");
    }
}

#[test]
fn serde_errors_speak_yaml_and_point_at_the_right_key() {
    let e = first_error(&GOOD.replace("  name: users\n", "  namespace: crm\n"));
    assert!(
        e.starts_with("f.yaml:4:1: metadata: missing field `name`"),
        "{e}"
    );

    let e = first_error(&GOOD.replace("        size: 50\n", "        size: lots\n"));
    assert!(e.contains("expected a whole number, 0 or more"), "{e}");
    assert!(!e.contains("u64"), "{e}");

    let e = first_error(&GOOD.replace("        kind: cursor\n", "        kind: offset\n"));
    assert!(e.contains("pagination.kind: unknown value `offset`"), "{e}");
}

#[test]
fn sql_may_use_ctes_and_names_are_case_sensitive() {
    assert_eq!(
        validate::check_sql("WITH recent AS (SELECT * FROM source) SELECT id FROM recent"),
        Ok(())
    );
    // The worker's DataFusion does not lowercase identifiers, so `SOURCE` is another table.
    assert!(validate::check_sql("SELECT * FROM SOURCE").is_err());
    let e = validate::check_sql("WITH x AS (SELECT 1) SELECT * FROM source JOIN users ON true")
        .unwrap_err();
    assert!(e.contains("the query reads users;"), "{e}");
    let e = validate::check_sql("DELETE FROM source").unwrap_err();
    assert!(e.contains("found DELETE"), "{e}");
    let e = validate::check_sql("SELECT id FROM source WHERE").unwrap_err();
    assert!(e.starts_with("invalid SQL: Expected: an expression"), "{e}");
}

#[test]
fn a_mysql_sink_loads_and_its_url_and_key_are_checked() {
    let env = BTreeMap::from([
        ("API_TOKEN".to_string(), "s3cret".to_string()),
        ("DW".to_string(), "mysql://u:p@db:3306/dw".to_string()),
    ]);
    let mysql = GOOD.replace(
        "sqlite: { path: ./out.db, table: users }",
        "mysql: { url: \"${DW}\", table: dw.users, mode: merge, primary_key: [id] }",
    );
    let p = load("my.yaml", &mysql, Some(&env)).unwrap();
    let sink = p.spec.sink.mysql.as_ref().unwrap();
    assert_eq!(
        (sink.table.as_str(), sink.mode),
        ("dw.users", LoadMode::Merge)
    );
    let resolved = secrets::resolve(&p, &env).unwrap();
    assert_eq!(
        resolved.spec.sink.mysql.unwrap().url,
        "mysql://u:p@db:3306/dw"
    );

    let e = first_error(&GOOD.replace(
        "sqlite: { path: ./out.db, table: users }",
        "mysql: { url: \"postgres://db/dw\", table: users }",
    ));
    assert!(
        e.contains("spec.sink.mysql.url") && e.contains("not a MySQL"),
        "{e}"
    );
    let e = first_error(&GOOD.replace(
        "sqlite: { path: ./out.db, table: users }",
        "mysql: { url: \"mysql://db/dw\", table: users, mode: merge }",
    ));
    assert!(e.contains("spec.sink.mysql.primary_key"), "{e}");
    let e = first_error(&GOOD.replace(
        "sqlite: { path: ./out.db, table: users }",
        "sqlite: { path: ./out.db, table: users }\n    mysql: { url: \"mysql://db/dw\", table: users }",
    ));
    assert!(e.contains("2 sinks are set"), "{e}");
}

/// Cron schedules take names and shortcuts; a wrong field is named, with the hint.
#[test]
fn cron_schedules_with_names_and_shortcuts() {
    let with = |cron: &str| {
        GOOD.replace(
            "spec:\n",
            &format!("spec:\n  schedule: {{ cron: {cron:?} }}\n"),
        )
    };
    for ok in [
        "0 9 * * MON-FRI",
        "@daily",
        "0 0 1 JAN,jul *",
        "*/5 9-17 * * 1-5",
    ] {
        let p = load("p.yaml", &with(ok), Some(&env())).unwrap();
        assert_eq!(p.spec.schedule.unwrap().cron.unwrap(), ok);
    }
    let e = first_error(&with("0 9 * * MON-FRY"));
    assert!(
        e.contains("spec.schedule.cron: day of week: \"MON-FRY\" is not a day of week name"),
        "{e}"
    );
    assert!(e.contains("@daily"), "the hint names the shortcuts: {e}");
    let e = first_error(&with("0 0 L * *"));
    assert!(e.contains("uses 'L'"), "{e}");
    let e = first_error(&with("0 0 31 APR *"));
    assert!(e.contains("\"0 0 31 APR *\" never fires"), "{e}");
}
