//! `spec.batch`: how many pages one sink transaction covers, and how far fetching runs
//! ahead of loading. A batch closes when it holds `max_records` source records or when
//! `max_wait` has passed since its first page, whichever comes first; its rows and the
//! checkpoint after its last page commit together (DESIGN §6), so a batch is all or nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::parse::Problem;
use crate::limits::{
    DEFAULT_BATCH_MAX_RECORDS, DEFAULT_BATCH_MAX_WAIT, DEFAULT_PREFETCH_PAGES, MAX_BATCH_RECORDS,
    MAX_BATCH_WAIT, MAX_PREFETCH_PAGES,
};

const BATCH: &str = "spec.batch";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Source records after which the open batch commits (1 = every page on its own).
    #[serde(default = "default_max_records")]
    pub max_records: u64,
    /// Time after the batch's first page at which it commits, however few records it has
    /// (0 = every page on its own).
    #[serde(default = "default_max_wait", with = "duration")]
    pub max_wait: Duration,
    /// Pages fetched ahead of the one being transformed and loaded.
    #[serde(default = "default_prefetch_pages")]
    pub prefetch_pages: usize,
}

fn default_max_records() -> u64 {
    DEFAULT_BATCH_MAX_RECORDS
}
fn default_max_wait() -> Duration {
    DEFAULT_BATCH_MAX_WAIT
}
fn default_prefetch_pages() -> usize {
    DEFAULT_PREFETCH_PAGES
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            max_records: default_max_records(),
            max_wait: default_max_wait(),
            prefetch_pages: default_prefetch_pages(),
        }
    }
}

impl Batch {
    pub(crate) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The bounds of `spec.batch`.
pub(crate) fn validate(b: &Batch, out: &mut Vec<Problem>) {
    if b.max_records == 0 || b.max_records > MAX_BATCH_RECORDS {
        out.push(
            Problem::new(
                format!("{BATCH}.max_records"),
                format!("must be between 1 and {MAX_BATCH_RECORDS}"),
            )
            .hint("source records one sink transaction covers; 10000 by default, 1 commits every page"),
        );
    }
    if b.max_wait > MAX_BATCH_WAIT {
        out.push(
            Problem::new(
                format!("{BATCH}.max_wait"),
                format!("must be at most {}s", MAX_BATCH_WAIT.as_secs()),
            )
            .hint("how long loaded rows may wait for their commit; 1s by default, 0s commits every page"),
        );
    }
    if b.prefetch_pages == 0 || b.prefetch_pages > MAX_PREFETCH_PAGES {
        out.push(
            Problem::new(
                format!("{BATCH}.prefetch_pages"),
                format!("must be between 1 and {MAX_PREFETCH_PAGES}"),
            )
            .hint("pages fetched ahead while the current one loads; 2 by default"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load;

    fn doc(batch: &str) -> String {
        crate::spec::test_doc::items("", batch)
    }

    fn errors(batch: &str) -> String {
        load("p.yaml", &doc(batch), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_are_named_limits_and_not_written_out() {
        let p = load("p.yaml", &doc(""), None).unwrap();
        assert_eq!(
            (
                p.spec.batch.max_records,
                p.spec.batch.max_wait,
                p.spec.batch.prefetch_pages
            ),
            (
                DEFAULT_BATCH_MAX_RECORDS,
                DEFAULT_BATCH_MAX_WAIT,
                DEFAULT_PREFETCH_PAGES
            )
        );
        assert!(!p.to_yaml().contains("batch"), "{}", p.to_yaml());
        let p = load(
            "p.yaml",
            &doc("  batch: { max_records: 1, max_wait: 0s, prefetch_pages: 16 }"),
            None,
        )
        .unwrap();
        assert_eq!(p.spec.batch.max_records, 1);
        assert_eq!(p.spec.batch.max_wait, Duration::ZERO);
        let again = load("p.yaml", &p.to_yaml(), None).unwrap();
        assert_eq!(again.spec.batch, p.spec.batch, "written out and read back");
    }

    #[test]
    fn out_of_bounds_values_are_refused_with_their_limit() {
        for (bad, says) in [
            (
                "{ max_records: 0 }",
                "spec.batch.max_records: must be between 1 and 1000000",
            ),
            ("{ max_records: 1000001 }", "must be between 1 and 1000000"),
            (
                "{ max_wait: 61s }",
                "spec.batch.max_wait: must be at most 60s",
            ),
            (
                "{ prefetch_pages: 0 }",
                "spec.batch.prefetch_pages: must be between 1 and 16",
            ),
            ("{ prefetch_pages: 17 }", "must be between 1 and 16"),
            ("{ max_rows: 5 }", "unknown field `max_rows`"),
        ] {
            let e = errors(&format!("  batch: {bad}"));
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
