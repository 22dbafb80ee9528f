//! Where a shard resumes: the pagination position after the last committed page. The sink
//! stores it atomically with the rows (DESIGN §6); the coordinator keeps a copy for display.

use serde::{Deserialize, Serialize};

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
    /// Largest `incremental.cursor_field` value committed so far (incremental loads).
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

/// The watermark after committing `records`: the largest value of `field` seen, compared
/// as numbers when both sides are numbers and as text otherwise.
pub fn advance_watermark(
    current: Option<String>,
    records: &[serde_json::Value],
    field: &str,
) -> Option<String> {
    let mut best = current;
    for r in records {
        let v = match r.get(field) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        let newer = match &best {
            None => true,
            Some(b) => match (b.parse::<f64>(), v.parse::<f64>()) {
                (Ok(x), Ok(y)) => y > x,
                _ => v > *b,
            },
        };
        if newer {
            best = Some(v);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::advance_watermark;

    #[test]
    fn watermarks_only_move_forward() {
        let recs = [json!({"id": 9}), json!({"id": 12}), json!({"id": 3})];
        assert_eq!(advance_watermark(None, &recs, "id").as_deref(), Some("12"));
        assert_eq!(
            advance_watermark(Some("100".into()), &recs, "id").as_deref(),
            Some("100")
        );
        let ts = [json!({"t": "2026-01-02"}), json!({"t": "2026-01-01"})];
        assert_eq!(
            advance_watermark(None, &ts, "t").as_deref(),
            Some("2026-01-02")
        );
        assert_eq!(advance_watermark(None, &ts, "missing"), None);
    }
}
