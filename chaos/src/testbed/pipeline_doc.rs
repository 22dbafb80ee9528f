//! Pipeline documents over the mock API's id ranges, shared by the drills and the cluster
//! tests: `shards` contiguous id ranges, each paged through one of the mock's endpoints,
//! into a sink given as a YAML flow mapping. `${MOCK_API_URL}` (and whatever the sink
//! names, e.g. `${WAREHOUSE_URL}`) is substituted by apitapctl.

use std::ops::RangeInclusive;

/// How a pipeline pages through the mock API: the endpoint and the `pagination:` mapping.
#[derive(Debug, Clone)]
pub struct Paging {
    pub endpoint: &'static str,
    pub pagination: String,
}

/// Limit/offset pages of `size`.
pub fn limit_offset(size: u64) -> Paging {
    Paging {
        endpoint: "limit_offset",
        pagination: format!("{{ kind: limit_offset, size: {size} }}"),
    }
}

/// Numbered pages of `size`.
pub fn page_number(size: u64) -> Paging {
    Paging {
        endpoint: "page_number",
        pagination: format!("{{ kind: page_number, size: {size} }}"),
    }
}

/// Pages of `size` chained by the cursor and `has_more` flag in each body.
pub fn cursor(size: u64) -> Paging {
    Paging {
        endpoint: "cursor",
        pagination: format!(
            "{{ kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: {size} }}"
        ),
    }
}

/// The sink mapping for the PostgreSQL `table` at `${WAREHOUSE_URL}`, in `append` mode.
pub fn postgres(table: &str) -> String {
    format!(r#"postgres: {{ url: "${{WAREHOUSE_URL}}", table: {table}, mode: append }}"#)
}

/// The pipeline document `name` whose `spec:` is `spec` (lines indented by 2).
pub fn doc(name: &str, spec: &str) -> String {
    format!("apiVersion: apitap/v1\nkind: Pipeline\nmetadata: {{ name: {name} }}\nspec:\n{spec}")
}

/// A pipeline over the mock records with the ids `ids`, cut into `shards` ranges.
#[derive(Debug, Clone)]
pub struct Sharded<'a> {
    pub name: &'a str,
    pub ids: RangeInclusive<u64>,
    pub shards: u32,
    pub paging: &'a Paging,
    /// A YAML flow mapping under `sink:`, e.g. [`postgres`].
    pub sink: &'a str,
    /// Extra lines under `source.http:` (each ending in a newline, indented by 6).
    pub http_extra: &'a str,
    /// Extra lines under `spec:` (each ending in a newline, indented by 2).
    pub spec_extra: &'a str,
}

/// The mock records 1..=`records` in `shards` ranges, 50 a page (limit/offset), into `sink`:
/// the plain document of the sink tests.
pub fn sharded(name: &str, records: u64, shards: u32, sink: &str) -> String {
    Sharded {
        name,
        ids: 1..=records,
        shards,
        paging: &limit_offset(50),
        sink,
        http_extra: "",
        spec_extra: "",
    }
    .yaml()
}

impl Sharded<'_> {
    /// The pipeline document.
    pub fn yaml(&self) -> String {
        let Sharded {
            name,
            ids,
            shards,
            paging,
            sink,
            http_extra,
            spec_extra,
        } = self;
        let (first, last, endpoint) = (ids.start(), ids.end(), paging.endpoint);
        let pagination = &paging.pagination;
        let spec = format!(
            r#"  shards: {{ param: ids, range: {{ start: {first}, end: {last}, count: {shards} }} }}
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/{endpoint}?from_id={{{{ shard.start }}}}&to_id={{{{ shard.end }}}}"
      records: $.data
      pagination: {pagination}
{http_extra}  sink:
    {sink}
{spec_extra}"#
        );
        doc(name, &spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_parses_and_keeps_its_extras() {
        let paging = cursor(50);
        let sink = postgres("t");
        let doc = Sharded {
            name: "p",
            ids: 11..=20,
            shards: 2,
            paging: &paging,
            sink: &sink,
            http_extra: "      timeout: 20s\n",
            spec_extra: "  policy: { max_attempts: 20 }\n",
        };
        let yaml = doc.yaml();
        let env = std::collections::BTreeMap::from([
            ("MOCK_API_URL".to_string(), "http://127.0.0.1:1".to_string()),
            (
                "WAREHOUSE_URL".to_string(),
                "postgres://u@127.0.0.1/d".to_string(),
            ),
        ]);
        let spec =
            apitap_common::spec::load("p.yaml", &yaml, Some(&env)).expect("a valid pipeline");
        assert_eq!(spec.metadata.name, "p", "{yaml}");
        assert!(
            yaml.contains("/v1/cursor?from_id={{ shard.start }}"),
            "{yaml}"
        );
        assert!(yaml.contains("start: 11, end: 20, count: 2"), "{yaml}");
        assert!(yaml.contains("timeout: 20s") && yaml.contains("max_attempts: 20"));
    }
}
