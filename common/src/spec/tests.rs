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
