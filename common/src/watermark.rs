//! Typed watermarks: how the largest `incremental.cursor_field` value of a shard is found,
//! and why some values may not move it.
//!
//! A watermark is kept as the text the API sent (it goes back to the API as
//! `{{ watermark }}`), but it is compared by its type ([`CursorType`]): instants for times,
//! so `…+02:00` and `…Z` order correctly, numbers for numbers, bytes for text. A value of
//! another type than the watermark's does not move it (a stray string cannot outrank every
//! timestamp), and a time later than now plus `max_future_skew` does not either: one record
//! dated 9999-12-31 would otherwise make every later run ask for records newer than that,
//! and load nothing again. Such records are still loaded; [`Advanced`] counts them so the
//! worker can report them.

use std::cmp::Ordering;

use serde_json::Value;

use crate::spec::{CursorType, Incremental};
use crate::timestamp;

/// How values of one pipeline's cursor field are read and which are plausible.
#[derive(Debug, Clone)]
pub struct Rule<'a> {
    pub field: &'a str,
    pub cursor_type: CursorType,
    /// The latest time (Unix milliseconds) a cursor may hold: now + `max_future_skew`.
    pub latest_ms: i64,
}

impl<'a> Rule<'a> {
    /// The rule of `inc` at `now_ms` (the worker's clock).
    pub fn new(inc: &'a Incremental, now_ms: u64) -> Self {
        let skew = i64::try_from(inc.max_future_skew.as_millis()).unwrap_or(i64::MAX);
        Self {
            field: &inc.cursor_field,
            cursor_type: inc.cursor_type,
            latest_ms: i64::try_from(now_ms)
                .unwrap_or(i64::MAX)
                .saturating_add(skew),
        }
    }
}

/// The watermark after a page, and the values that did not move it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advanced {
    pub watermark: Option<String>,
    /// Records whose cursor is a time beyond [`Rule::latest_ms`].
    pub future: u64,
    /// The first such value, for the log.
    pub first_future: Option<String>,
    /// Records whose cursor is of another type than the watermark, or not of the
    /// pipeline's `cursor_type`.
    pub mismatched: u64,
}

/// A cursor value read by its type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cursor {
    /// Unix milliseconds.
    Time(i64),
    Number(f64),
    Text,
}

impl Cursor {
    /// Times, numbers and text never compare with each other.
    fn cmp_same(self, other: Cursor) -> Option<Ordering> {
        match (self, other) {
            (Cursor::Time(a), Cursor::Time(b)) => Some(a.cmp(&b)),
            (Cursor::Number(a), Cursor::Number(b)) => a.partial_cmp(&b),
            (Cursor::Text, Cursor::Text) => Some(Ordering::Equal),
            _ => None,
        }
    }
}

/// The watermark after committing `records`: the largest plausible value of the rule's
/// field, starting from `current`. Records without the field, or with a value that is not
/// a string or a number, are skipped as before.
pub fn advance(current: Option<String>, records: &[Value], rule: &Rule) -> Advanced {
    let mut out = Advanced {
        watermark: current,
        ..Advanced::default()
    };
    let mut best = out
        .watermark
        .as_deref()
        .and_then(|w| read(w, false, rule.cursor_type));
    for r in records {
        let (text, is_number) = match r.get(rule.field) {
            Some(Value::String(s)) => (s.clone(), false),
            Some(Value::Number(n)) => (n.to_string(), true),
            _ => continue,
        };
        let Some(value) = read(&text, is_number, rule.cursor_type) else {
            out.mismatched += 1;
            continue;
        };
        if let Cursor::Time(ms) = value {
            if ms > rule.latest_ms {
                out.future += 1;
                out.first_future.get_or_insert(text);
                continue;
            }
        }
        let newer = match (&out.watermark, best) {
            (None, _) | (Some(_), None) => true,
            (Some(w), Some(b)) => match value.cmp_same(b) {
                None => {
                    out.mismatched += 1;
                    false
                }
                Some(Ordering::Equal) => text.as_str() > w.as_str(),
                Some(o) => o == Ordering::Greater,
            },
        };
        if newer {
            best = Some(value);
            out.watermark = Some(text);
        }
    }
    out
}

/// `text` as a cursor of `ty`; `None` when it is not one. `is_number`: it was a JSON number.
fn read(text: &str, is_number: bool, ty: CursorType) -> Option<Cursor> {
    let number = || text.trim().parse::<f64>().ok().filter(|n| !n.is_nan());
    match ty {
        CursorType::Auto if is_number => number().map(Cursor::Number),
        CursorType::Auto => Some(
            time_ms(text)
                .map(Cursor::Time)
                .or_else(|| number().map(Cursor::Number))
                .unwrap_or(Cursor::Text),
        ),
        CursorType::Timestamp => time_ms(text).map(Cursor::Time),
        // Float to integer casts saturate, so an absurd number becomes a far future time.
        CursorType::UnixSeconds => number().map(|s| Cursor::Time((s * 1000.0) as i64)),
        CursorType::UnixMillis => number().map(|ms| Cursor::Time(ms as i64)),
        CursorType::Number => number().map(Cursor::Number),
        CursorType::Text => Some(Cursor::Text),
    }
}

/// Unix milliseconds of an RFC 3339 timestamp or a `YYYY-MM-DD` date (midnight UTC).
fn time_ms(text: &str) -> Option<i64> {
    let secs = if text.len() == 10 {
        timestamp::parse(&format!("{text}T00:00:00Z")).ok()?
    } else {
        timestamp::parse(text).ok()?
    };
    Some(secs.saturating_mul(1000))
}

#[cfg(test)]
#[path = "watermark_tests.rs"]
mod tests;
