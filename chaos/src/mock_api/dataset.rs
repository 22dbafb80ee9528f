//! The deterministic dataset served by the mock API.
//!
//! Every record is a pure function of its 1-based id, so any test, demo or chaos
//! drill can recompute what the warehouse must contain without talking to the
//! server. The shape is deliberately awkward for an ETL pipeline: camelCase
//! keys, a nested object, an array and a `score` column that mixes JSON
//! integers and floats on the same page, so schema inference gets exercised.

use std::sync::atomic::{AtomicU64, Ordering};

use apitap_common::timestamp;
use serde_json::{json, Value};

/// City names picked by `id % 5`; fixed so the data is reproducible.
pub const CITIES: [&str; 5] = ["Lisbon", "Osaka", "Nairobi", "Quito", "Oslo"];

/// Unix seconds of 2026-01-01T00:00:00Z, the `createdAt` of record 0.
pub(crate) const BASE_UNIX_SECS: i64 = 1_767_225_600;

/// Builds the record with the given 1-based id.
///
/// Always returns exactly the 8 keys `id`, `userName`, `email`, `score`,
/// `active`, `createdAt`, `tags` and `address`. Arithmetic is done in `u128`
/// so even absurd ids never overflow or panic.
pub fn record(id: u64) -> Value {
    let wide = u128::from(id);
    // `match` on the remainder rather than `is_multiple_of`, which is newer
    // than the workspace's rust-version (1.85).
    let score = match id % 5 {
        0 => json!(id % 1000),
        // (id * 37) % 10000 < 10000, so the cast to f64 is exact.
        _ => json!(((wide * 37) % 10_000) as f64 / 100.0 + 0.25),
    };
    let active = !matches!(id % 3, 0);
    json!({
        "id": id,
        "userName": format!("user-{id:06}"),
        "email": format!("user{id}@example.test"),
        "score": score,
        "active": active,
        "createdAt": created_at(id),
        "tags": [format!("t{}", id % 4), format!("g{}", id % 7)],
        "address": {
            "city": CITIES[(id % 5) as usize],
            "zip": format!("{:05}", (wide * 13) % 100_000),
        },
    })
}

/// RFC 3339 UTC timestamp of 2026-01-01T00:00:00Z plus `id` minutes.
///
/// In `i128` seconds, so even `u64::MAX` minutes neither overflow nor panic: past the year
/// 9999 the year just gets more digits.
pub fn created_at(id: u64) -> String {
    timestamp::format_wide(i128::from(BASE_UNIX_SECS) + i128::from(id) * 60)
}

/// The set of records currently served: ids `1..=size()`.
///
/// The size is atomic so `POST /_admin/grow` can append records while other
/// requests are being served, which is how incremental loads are simulated.
#[derive(Debug)]
pub struct Dataset {
    size: AtomicU64,
}

impl Dataset {
    /// A dataset holding records `1..=size`.
    pub fn new(size: u64) -> Self {
        Self {
            size: AtomicU64::new(size),
        }
    }

    /// Number of records; the highest id served.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::SeqCst)
    }

    /// Appends `n` records (saturating at `u64::MAX`) and returns the new size.
    pub fn grow(&self, n: u64) -> u64 {
        let previous = self
            .size
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                Some(s.saturating_add(n))
            })
            .unwrap_or_else(|s| s);
        previous.saturating_add(n)
    }

    /// The record with this id, or `None` when it is outside `1..=size()`.
    pub fn get(&self, id: u64) -> Option<Value> {
        (id >= 1 && id <= self.size()).then(|| record(id))
    }
}
