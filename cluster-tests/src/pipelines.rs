//! Pipeline documents the cluster tests submit.

/// `records` mock records in `shards` id ranges, fetched with limit/offset pages of 50 into
/// the PostgreSQL table named like the pipeline, in `append` mode, so that a duplicate would
/// show up as a second row.
pub fn sharded(name: &str, records: u64, shards: u32) -> String {
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
      pagination: {{ kind: limit_offset, size: 50 }}
  sink:
    postgres: {{ url: "${{WAREHOUSE_URL}}", table: {table} }}
"#,
        table = name.replace('-', "_"),
    )
}
