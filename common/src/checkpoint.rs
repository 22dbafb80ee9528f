//! Where a shard resumes: the pagination position after the last committed page. The sink
//! stores it atomically with the rows (DESIGN §6); the coordinator keeps a copy for display.

use serde::{Deserialize, Serialize};

/// The template variable that hands a shard of a full-refresh pipeline with
/// `source.http.conditional` the `ETag` / `Last-Modified` of its last successful run (JSON,
/// kept by the coordinator like an incremental pipeline's watermark).
pub const VALIDATORS_VAR: &str = "http_validators";

/// The next request a shard has to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum Position {
    /// Nothing fetched yet.
    Start,
    /// `limit_offset`: the next offset.
    Offset { offset: u64 },
    /// `page_number`: the next page number.
    Page { page: u64 },
    /// `cursor`: the cursor value to send.
    Cursor { cursor: String },
    /// `next_url` and `link_header`: the URL to fetch next.
    Url { url: String },
    /// The source is exhausted; the shard is complete.
    Done,
}

/// What the sink stores with every batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: Position,
    /// Pages committed so far in this shard.
    pub pages: u64,
    /// Records committed so far in this shard.
    pub records: u64,
    /// Largest `incremental.cursor_field` value committed so far (incremental loads; see
    /// [`crate::watermark`]); for a full refresh with `source.http.conditional`, the
    /// response's validators ([`VALIDATORS_VAR`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

impl Checkpoint {
    pub fn start() -> Self {
        Self {
            position: Position::Start,
            pages: 0,
            records: 0,
            watermark: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.position == Position::Done
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}
