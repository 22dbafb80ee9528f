//! Pipeline documents the cluster tests submit.

use std::ops::RangeInclusive;
use std::path::Path;

/// `records` mock records in `shards` id ranges, fetched with limit/offset pages of 50 into
/// the PostgreSQL table named like the pipeline, in `append` mode, so that a duplicate would
/// show up as a second row.
pub fn sharded(name: &str, records: u64, shards: u32) -> String {
    let table = name.replace('-', "_");
    let paging = limit_offset(50);
    sharded_paged(name, 1..=records, shards, &paging, &postgres(&table))
}

/// `records` mock records in `shards` id ranges, `size` per page, into the SQLite file `db`
/// (table named like the pipeline).
pub fn sharded_sqlite(name: &str, records: u64, shards: u32, size: u32, db: &Path) -> String {
    let table = name.replace('-', "_");
    let sink = format!(r#"sqlite: {{ path: "{}", table: {table} }}"#, db.display());
    sharded_paged(name, 1..=records, shards, &limit_offset(size), &sink)
}

/// The mock records with the ids `ids` in `shards` id ranges, fetched as `paging` says (a
/// [`Paging`]), into `sink` (a YAML flow mapping under `sink:`, e.g. [`postgres`]).
pub fn sharded_paged(
    name: &str,
    ids: RangeInclusive<u64>,
    shards: u32,
    paging: &Paging,
    sink: &str,
) -> String {
    let Paging {
        endpoint,
        pagination,
    } = paging;
    let (first, last) = (ids.start(), ids.end());
    format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  shards: {{ param: ids, range: {{ start: {first}, end: {last}, count: {shards} }} }}
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/{endpoint}?from_id={{{{ shard.start }}}}&to_id={{{{ shard.end }}}}"
      records: $.data
      pagination: {pagination}
  sink:
    {sink}
"#
    )
}

/// How a pipeline pages through the mock API: the endpoint and the `pagination:` mapping.
#[derive(Debug, Clone)]
pub struct Paging {
    pub endpoint: &'static str,
    pub pagination: String,
}

/// Limit/offset pages of `size`.
pub fn limit_offset(size: u32) -> Paging {
    Paging {
        endpoint: "limit_offset",
        pagination: format!("{{ kind: limit_offset, size: {size} }}"),
    }
}

/// Numbered pages of `size`.
pub fn page_number(size: u32) -> Paging {
    Paging {
        endpoint: "page_number",
        pagination: format!("{{ kind: page_number, size: {size} }}"),
    }
}

/// Pages of `size` chained by the cursor and `has_more` flag in each body.
pub fn cursor(size: u32) -> Paging {
    Paging {
        endpoint: "cursor",
        pagination: format!(
            "{{ kind: cursor, cursor_path: $.next_cursor, has_more_path: $.has_more, size: {size} }}"
        ),
    }
}

/// The sink mapping for the PostgreSQL `table` at `${WAREHOUSE_URL}`.
pub fn postgres(table: &str) -> String {
    format!(r#"postgres: {{ url: "${{WAREHOUSE_URL}}", table: {table} }}"#)
}
