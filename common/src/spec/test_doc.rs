//! The smallest pipeline document the spec's tests start from.

/// Pipeline `items` from `https://api.example.com/v1/items` into a SQLite table, with
/// `http_extra` under `source.http` (lines indented by 6) and `spec_extra` under `spec`
/// (lines indented by 2).
pub(crate) fn items(http_extra: &str, spec_extra: &str) -> String {
    format!(
        r#"
apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: items }}
spec:
  source:
    http:
      url: "https://api.example.com/v1/items"
{http_extra}
  sink:
    sqlite: {{ table: items }}
{spec_extra}
"#
    )
}
