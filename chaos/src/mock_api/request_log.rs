//! The log of `/v1` requests, exposed at `/_admin/requests` and
//! `/_admin/stats` so tests can assert exactly what a worker fetched (e.g.
//! that a retry happened, or that shards never overlapped).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde_json::{json, Value};

/// Entries kept; older ones are dropped so a long soak cannot exhaust memory.
pub const MAX_ENTRIES: usize = 100_000;

/// One served `/v1` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestLogEntry {
    /// 1-based sequence number over the server's lifetime.
    pub seq: u64,
    /// Unix time in milliseconds when the request arrived.
    pub at_ms: u64,
    /// Request path, e.g. `/v1/cursor`.
    pub path: String,
    /// Raw query string (without `?`), possibly empty.
    pub query: String,
    /// Status code answered.
    pub status: u16,
    /// Time to answer in milliseconds, including injected latency.
    pub latency_ms: u64,
}

/// Bounded request log plus lifetime counters.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: VecDeque<RequestLogEntry>,
    total: u64,
    by_status: BTreeMap<u16, u64>,
}

impl RequestLog {
    /// Records a request (its `seq` is set here) and returns its sequence number.
    pub fn record(&mut self, mut entry: RequestLogEntry) -> u64 {
        self.total += 1;
        *self.by_status.entry(entry.status).or_default() += 1;
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
        }
        entry.seq = self.total;
        self.entries.push_back(entry);
        self.total
    }

    /// The retained entries, oldest first (at most [`MAX_ENTRIES`]).
    pub fn entries(&self) -> Vec<RequestLogEntry> {
        self.entries.iter().cloned().collect()
    }

    /// `{"requests": n, "by_status": {"200": n, ...}, "records": size}`;
    /// counts cover the whole lifetime, not only the retained entries.
    pub fn stats(&self, records: u64) -> Value {
        let by_status: serde_json::Map<String, Value> = self
            .by_status
            .iter()
            .map(|(status, n)| (status.to_string(), json!(n)))
            .collect();
        json!({"requests": self.total, "by_status": by_status, "records": records})
    }
}
