//! Pipeline documents the cluster tests submit.

use std::ops::RangeInclusive;
use std::path::Path;

use apitap_chaos::testbed::pipeline_doc;
pub use apitap_chaos::testbed::pipeline_doc::{
    cursor, doc, limit_offset, page_number, postgres, Paging,
};

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
    sharded_paged(name, 1..=records, shards, &limit_offset(size.into()), &sink)
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
    pipeline_doc::Sharded {
        name,
        ids,
        shards,
        paging,
        sink,
        http_extra: "",
        spec_extra: "",
    }
    .yaml()
}
