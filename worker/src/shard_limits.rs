//! The limits the shard loop checks page by page (docs/operations.md, "Limits of upstream
//! APIs"): the shard's budget of pages, records and bytes (`spec.source.http.limits`), and
//! which cursor values may move an incremental watermark (`spec.incremental`).
//!
//! A budget that bites fails the shard as a user error: an API that pages for ever would
//! come back the same on a retry, so retrying only repeats the cost. A watermark value
//! beyond the clock's skew is loaded but does not move the watermark, so no later record
//! is skipped because of it.

use apitap_common::checkpoint::Checkpoint;
use apitap_common::limits::LimitError;
use apitap_common::spec::{Incremental, ShardLimits};
use apitap_common::watermark::{self, Rule};
use serde_json::Value;

use crate::metrics::Metrics;

/// Pages, records and bytes one shard may fetch. Pages and records count from the shard's
/// start (they are in its checkpoint); bytes count what this lease fetched.
#[derive(Debug, Clone)]
pub struct ShardBudget {
    limits: ShardLimits,
    /// Response bytes fetched by this lease.
    bytes: u64,
}

impl ShardBudget {
    pub fn new(limits: &ShardLimits) -> Self {
        Self {
            limits: limits.clone(),
            bytes: 0,
        }
    }

    /// Before the page after `cp` is fetched: the shard has used its pages and the source
    /// still has more.
    pub fn before_fetch(&self, cp: &Checkpoint) -> Result<(), LimitError> {
        let max = self.limits.max_pages();
        if cp.pages < max {
            return Ok(());
        }
        Err(over(
            "shard_max_pages",
            format!(
                "the shard has fetched {} pages and the source has more",
                cp.pages
            ),
            format!("{max} pages"),
            "max_pages",
        ))
    }

    /// After a page of `records` records and `bytes` bytes was fetched, before it is
    /// committed: the shard would go over its records or bytes.
    pub fn after_fetch(
        &mut self,
        cp: &Checkpoint,
        records: usize,
        bytes: u64,
    ) -> Result<(), LimitError> {
        let total = cp.records.saturating_add(records as u64);
        let max = self.limits.max_records();
        if total > max {
            return Err(over(
                "shard_max_records",
                format!("the shard has fetched {total} records"),
                format!("{max} records"),
                "max_records",
            ));
        }
        self.bytes = self.bytes.saturating_add(bytes);
        let max = self.limits.max_bytes();
        if self.bytes > max {
            return Err(over(
                "shard_max_bytes",
                format!("the shard has fetched {} bytes", self.bytes),
                format!("{max} bytes"),
                "max_bytes",
            ));
        }
        Ok(())
    }
}

fn over(limit: &'static str, seen: String, max: String, key: &str) -> LimitError {
    LimitError::new(
        limit,
        seen,
        max,
        format!(
            "if the source really is this large, raise spec.source.http.limits.{key} or cut it \
             into more shards (spec.shards); if not, check that its pagination ends"
        ),
    )
}

/// Logs and counts a budget that bit; the caller fails the shard with it.
pub fn report_budget(metrics: &Metrics, e: &LimitError) {
    metrics.limit_hits.inc(&[e.limit]);
    tracing::warn!(error = %e, "limit {}: shard failed", e.limit);
}

/// Longest cursor value quoted in a log line.
const SHOWN_VALUE_CHARS: usize = 64;

/// The watermark after `records`, by the pipeline's typed rule at the worker's clock. Values
/// beyond now + `max_future_skew` are logged and counted (`limit_hits{limit=
/// "max_future_skew"}`) and do not move it; the records themselves are loaded as usual.
pub fn advance_watermark(
    metrics: &Metrics,
    inc: &Incremental,
    current: Option<String>,
    records: &[Value],
    now_ms: u64,
) -> Option<String> {
    let rule = Rule::new(inc, now_ms);
    let a = watermark::advance(current, records, &rule);
    if a.future > 0 {
        metrics.limit_hits.add(&["max_future_skew"], a.future);
        let value: String = a
            .first_future
            .unwrap_or_default()
            .chars()
            .take(SHOWN_VALUE_CHARS)
            .collect();
        tracing::warn!(
            field = %inc.cursor_field,
            value = %value,
            records = a.future,
            max_future_skew_s = inc.max_future_skew.as_secs(),
            "limit max_future_skew: cursor values beyond the clock do not move the watermark; \
             the records are loaded"
        );
    }
    if a.mismatched > 0 {
        tracing::warn!(
            field = %inc.cursor_field,
            cursor_type = inc.cursor_type.as_str(),
            records = a.mismatched,
            "cursor values of another type than the watermark do not move it"
        );
    }
    a.watermark
}

#[cfg(test)]
mod tests {
    use apitap_common::checkpoint::Position;

    use super::*;

    fn at(pages: u64, records: u64) -> Checkpoint {
        Checkpoint {
            position: Position::Page { page: pages + 1 },
            pages,
            records,
            watermark: None,
        }
    }

    #[test]
    fn budgets_allow_their_maximum_and_name_the_key_beyond_it() {
        let limits = ShardLimits {
            max_pages: Some(2),
            max_records: Some(10),
            max_bytes: Some(100),
        };
        let mut b = ShardBudget::new(&limits);
        assert!(b.before_fetch(&at(1, 5)).is_ok());
        let e = b.before_fetch(&at(2, 5)).unwrap_err();
        assert_eq!(e.limit, "shard_max_pages");
        assert!(
            e.to_string()
                .starts_with("the shard has fetched 2 pages and the source has more, over the limit shard_max_pages of 2 pages; if the source really is this large, raise spec.source.http.limits.max_pages"),
            "{e}"
        );
        assert!(b.after_fetch(&at(1, 5), 5, 60).is_ok());
        let e = b.after_fetch(&at(1, 5), 6, 0).unwrap_err();
        assert_eq!(e.limit, "shard_max_records");
        assert!(e.to_string().contains("limits.max_records"), "{e}");
        let e = b.after_fetch(&at(1, 5), 0, 41).unwrap_err();
        assert_eq!(e.limit, "shard_max_bytes");
        assert!(e.to_string().contains("101 bytes"), "{e}");
    }

    #[test]
    fn counts_saturate() {
        let mut b = ShardBudget::new(&ShardLimits::default());
        assert!(b.after_fetch(&at(0, u64::MAX), usize::MAX, 0).is_err());
        assert!(b.after_fetch(&at(0, 0), 0, u64::MAX).is_err());
        assert!(b.after_fetch(&at(0, 0), 0, u64::MAX).is_err());
    }
}
