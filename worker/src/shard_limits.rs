//! The limits the shard loop checks page by page (docs/operations.md, "Limits of upstream
//! APIs"): which cursor values may move an incremental watermark (`spec.incremental`).
//!
//! A watermark value beyond the clock's skew is loaded but does not move the watermark, so
//! no later record is skipped because of it.

use apitap_common::spec::Incremental;
use apitap_common::watermark::{self, Rule};
use serde_json::Value;

use crate::metrics::Metrics;

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
