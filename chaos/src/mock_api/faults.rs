//! Injected faults, switchable at run time through `/_admin/faults`.
//!
//! Faults form a FIFO queue: the head applies to the next `count` `/v1`
//! requests, then the next queued fault takes over. This makes chaos drills
//! deterministic ("the next 3 requests get 429, then 1 truncated body")
//! instead of probabilistic, so assertions on retries are exact.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{json, Value};

/// Longest latency one fault may inject, so a typo cannot hang a test run.
pub const MAX_LATENCY_MS: u64 = 600_000;

/// What happens to one affected request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer `status` (4xx/5xx) with an optional `Retry-After` header.
    Status {
        /// HTTP status code to answer.
        status: u16,
        /// Seconds put in `Retry-After`, if any.
        retry_after_secs: Option<u64>,
    },
    /// Sleep `ms` milliseconds, then serve normally.
    Latency {
        /// Delay in milliseconds.
        ms: u64,
    },
    /// Serve normally but cut the body in half (Content-Length matches the
    /// cut body), simulating a proxy that drops a response mid-way.
    Truncate,
}

/// A queued fault and how many more requests it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    /// The fault applied.
    pub fault: Fault,
    /// Remaining requests it applies to (at least 1 while queued).
    pub count: u64,
}

/// The JSON accepted by `POST /_admin/faults`, validated into a [`FaultSpec`].
#[derive(Debug, Deserialize)]
struct RawFault {
    kind: String,
    status: Option<u16>,
    retry_after_secs: Option<u64>,
    ms: Option<u64>,
    count: Option<u64>,
}

impl FaultSpec {
    /// Parses one fault object such as
    /// `{"kind":"status","status":429,"retry_after_secs":2,"count":3}`;
    /// the error message names the offending field.
    pub fn from_json(value: Value) -> Result<Self, String> {
        let raw: RawFault = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let count = raw.count.unwrap_or(1);
        if count == 0 {
            return Err("`count` must be at least 1".into());
        }
        let fault = match raw.kind.as_str() {
            "status" => {
                let status = raw
                    .status
                    .ok_or("a status fault needs `status` (400..=599)")?;
                if !(400..=599).contains(&status) {
                    return Err(format!("`status` must be within 400..=599, got {status}"));
                }
                Fault::Status {
                    status,
                    retry_after_secs: raw.retry_after_secs,
                }
            }
            "latency" => {
                let ms = raw.ms.ok_or("a latency fault needs `ms`")?;
                if ms > MAX_LATENCY_MS {
                    return Err(format!("`ms` must be at most {MAX_LATENCY_MS}, got {ms}"));
                }
                Fault::Latency { ms }
            }
            "truncate" => Fault::Truncate,
            other => {
                return Err(format!(
                    "unknown `kind` {other:?}; expected status, latency or truncate"
                ))
            }
        };
        Ok(Self { fault, count })
    }

    /// The JSON form, the same shape `POST /_admin/faults` accepts.
    pub fn to_json(&self) -> Value {
        match self.fault {
            Fault::Status {
                status,
                retry_after_secs,
            } => json!({
                "kind": "status",
                "status": status,
                "retry_after_secs": retry_after_secs,
                "count": self.count,
            }),
            Fault::Latency { ms } => json!({"kind": "latency", "ms": ms, "count": self.count}),
            Fault::Truncate => json!({"kind": "truncate", "count": self.count}),
        }
    }
}

/// The FIFO of pending faults.
#[derive(Debug, Default)]
pub struct FaultQueue {
    queue: VecDeque<FaultSpec>,
}

impl FaultQueue {
    /// Appends a fault and returns how many faults are now queued.
    pub fn push(&mut self, spec: FaultSpec) -> usize {
        if spec.count > 0 {
            self.queue.push_back(spec);
        }
        self.queue.len()
    }

    /// Drops every pending fault.
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// The fault for the request being served now, consuming one use of it.
    pub fn take_next(&mut self) -> Option<Fault> {
        let head = self.queue.front_mut()?;
        let fault = head.fault;
        head.count -= 1;
        if head.count == 0 {
            self.queue.pop_front();
        }
        Some(fault)
    }

    /// The pending faults, head first.
    pub fn pending(&self) -> Vec<FaultSpec> {
        self.queue.iter().copied().collect()
    }
}
