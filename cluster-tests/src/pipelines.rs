//! Pipeline documents the cluster tests submit.

use std::path::Path;

/// `records` mock records in `shards` id ranges, fetched with limit/offset pages of 50 into
/// the PostgreSQL table named like the pipeline, in `append` mode, so that a duplicate would
/// show up as a second row.
pub fn sharded(name: &str, records: u64, shards: u32) -> String {
    let table = name.replace('-', "_");
    with_sink(
        name,
        records,
        shards,
        50,
        &format!(r#"postgres: {{ url: "${{WAREHOUSE_URL}}", table: {table} }}"#),
    )
}

/// `records` mock records in `shards` id ranges, `size` per page, into the SQLite file `db`
/// (table named like the pipeline).
pub fn sharded_sqlite(name: &str, records: u64, shards: u32, size: u32, db: &Path) -> String {
    let table = name.replace('-', "_");
    with_sink(
        name,
        records,
        shards,
        size,
        &format!(r#"sqlite: {{ path: "{}", table: {table} }}"#, db.display()),
    )
}

fn with_sink(name: &str, records: u64, shards: u32, size: u32, sink: &str) -> String {
    format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata:
  name: {name}
spec:
  shards: {{ param: ids, range: {{ start: 1, end: {records}, count: {shards} }} }}
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/limit_offset?from_id={{{{ shard.start }}}}&to_id={{{{ shard.end }}}}"
      records: $.data
      pagination: {{ kind: limit_offset, size: {size} }}
  sink:
    {sink}
"#
    )
}
