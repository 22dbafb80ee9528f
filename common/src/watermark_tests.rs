use serde_json::json;

use super::*;

/// 2026-11-28T00:00:00Z
const NOW_MS: u64 = 1_795_824_000_000;

fn inc(field: &str, ty: CursorType) -> Incremental {
    Incremental {
        cursor_field: field.into(),
        initial: String::new(),
        cursor_type: ty,
        max_future_skew: crate::limits::DEFAULT_MAX_FUTURE_SKEW,
    }
}

fn run(current: Option<&str>, records: &[Value], inc: &Incremental) -> Advanced {
    advance(current.map(String::from), records, &Rule::new(inc, NOW_MS))
}

#[test]
fn watermarks_only_move_forward() {
    let by_id = inc("id", CursorType::Auto);
    let recs = [json!({"id": 9}), json!({"id": 12}), json!({"id": 3})];
    assert_eq!(run(None, &recs, &by_id).watermark.as_deref(), Some("12"));
    assert_eq!(
        run(Some("100"), &recs, &by_id).watermark.as_deref(),
        Some("100")
    );
    let ts = [json!({"t": "2026-01-02"}), json!({"t": "2026-01-01"})];
    let by_t = inc("t", CursorType::Auto);
    assert_eq!(
        run(None, &ts, &by_t).watermark.as_deref(),
        Some("2026-01-02")
    );
    assert_eq!(
        run(None, &ts, &inc("missing", CursorType::Auto)).watermark,
        None
    );
}

#[test]
fn a_far_future_time_does_not_move_the_watermark_and_is_counted() {
    let by_t = inc("updated_at", CursorType::Auto);
    let recs = [
        json!({"updated_at": "2026-11-27T10:00:00Z"}),
        json!({"updated_at": "9999-12-31"}),
        json!({"updated_at": "2026-11-27T11:00:00Z"}),
        json!({"updated_at": "9999-12-31T23:59:59Z"}),
    ];
    let a = run(Some("2026-11-01T00:00:00Z"), &recs, &by_t);
    assert_eq!(a.watermark.as_deref(), Some("2026-11-27T11:00:00Z"));
    assert_eq!(a.future, 2);
    assert_eq!(a.first_future.as_deref(), Some("9999-12-31"));
    // Within the skew (a day by default) a time ahead of the clock is accepted.
    let soon = [json!({"updated_at": "2026-11-28T20:00:00Z"})];
    assert_eq!(run(None, &soon, &by_t).future, 0);
    let mut strict = by_t.clone();
    strict.max_future_skew = std::time::Duration::ZERO;
    assert_eq!(run(None, &soon, &strict).future, 1);
}

#[test]
fn times_compare_as_instants_not_as_text() {
    let by_t = inc("t", CursorType::Timestamp);
    // 10:00+02:00 is 08:00Z, earlier than 09:00Z although it sorts later as text.
    let recs = [
        json!({"t": "2026-11-27T09:00:00Z"}),
        json!({"t": "2026-11-27T10:00:00+02:00"}),
    ];
    assert_eq!(
        run(None, &recs, &by_t).watermark.as_deref(),
        Some("2026-11-27T09:00:00Z")
    );
}

#[test]
fn values_of_another_type_do_not_outrank_the_watermark() {
    let by_t = inc("t", CursorType::Auto);
    let recs = [json!({"t": "2026-11-27T09:00:00Z"}), json!({"t": "zzz"})];
    let a = run(None, &recs, &by_t);
    assert_eq!(a.watermark.as_deref(), Some("2026-11-27T09:00:00Z"));
    assert_eq!(a.mismatched, 1);
    // A declared type ignores what is not of it.
    let a = run(None, &recs, &inc("t", CursorType::Timestamp));
    assert_eq!(a.mismatched, 1);
}

#[test]
fn epoch_cursors_are_checked_against_the_clock_when_declared() {
    let secs = [
        json!({"ts": 1_795_000_000}),
        json!({"ts": 253_402_300_799_u64}),
    ];
    let a = run(None, &secs, &inc("ts", CursorType::UnixSeconds));
    assert_eq!(a.watermark.as_deref(), Some("1795000000"));
    assert_eq!(a.future, 1);
    let ms = [json!({"ts": "1795000000000"}), json!({"ts": 1e300})];
    let a = run(None, &ms, &inc("ts", CursorType::UnixMillis));
    assert_eq!(a.watermark.as_deref(), Some("1795000000000"));
    assert_eq!(a.future, 1);
    // `auto` cannot know a number is a time: it is never checked.
    let a = run(None, &secs, &inc("ts", CursorType::Auto));
    assert_eq!(a.watermark.as_deref(), Some("253402300799"));
    assert_eq!(a.future, 0);
}

#[test]
fn the_skew_saturates_instead_of_wrapping() {
    let mut i = inc("t", CursorType::Auto);
    i.max_future_skew = crate::limits::MAX_DURATION;
    let r = Rule::new(&i, u64::MAX);
    assert_eq!(r.latest_ms, i64::MAX);
}
