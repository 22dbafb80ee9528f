//! Limits of the wire contracts, shared by both ends so that a client can refuse before it
//! sends and a server refuses what a client did not check. Each is named in the error that
//! reports it; docs/operations.md ("Limits") lists them with their knobs.

/// Largest gRPC message a coordinator or a client decodes or encodes. Large enough for a
/// `describe` of a run of 10,000 shards; a bigger message is refused with
/// `RESOURCE_EXHAUSTED`, never half-read.
pub const MAX_GRPC_MESSAGE_BYTES: usize = 16 << 20;

/// Most slots a worker may declare (`--slots`, `Register.slots`). Placement gives every
/// slot virtual nodes on the hash ring, so this bounds the ring's memory as well.
pub const MAX_WORKER_SLOTS: u32 = 1024;

/// Largest checkpoint (a cursor and its position) a worker may report; it is stored in
/// Raft with the shard.
pub const MAX_CHECKPOINT_BYTES: usize = 64 << 10;

/// Longest shard error kept in Raft; a longer one is cut at a character boundary and
/// marked, so a huge upstream error body cannot bloat the log.
pub const MAX_ERROR_BYTES: usize = 4 << 10;

/// Longest back-off an upstream `Retry-After` can impose on a rate-limit key (one hour);
/// longer values are clamped, on the worker and again on the coordinator.
pub const MAX_RETRY_AFTER_MS: u64 = 3_600_000;

/// Most dead-lettered records a shard keeps as a sample in Raft (the newest ones), and a
/// completion report may carry. A constant, not a knob: every node must apply a report to
/// the same state. The sink's dead-letter table keeps every record.
pub const MAX_DEAD_LETTER_SAMPLE: usize = 3;

/// Longest raw record of a dead-letter sample (JSON, cut at a character boundary); its
/// error is cut at [`MAX_ERROR_BYTES`].
pub const MAX_DEAD_LETTER_RECORD_BYTES: usize = 512;

/// Most breaker waits one heartbeat may carry; a worker holds at most `MAX_WORKER_SLOTS`
/// leases, so a longer list is not a worker's.
pub const MAX_BREAKER_WAITS: usize = MAX_WORKER_SLOTS as usize;

/// Cuts `s` to at most `max` bytes at a character boundary, marking the cut.
pub fn truncate_utf8(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    const MARK: &str = " …[truncated]";
    let mut end = max.saturating_sub(MARK.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole_and_says_so() {
        assert_eq!(truncate_utf8("short", 10), "short");
        let long = "é".repeat(100);
        let cut = truncate_utf8(&long, 40);
        assert!(cut.len() <= 40, "{} bytes", cut.len());
        assert!(cut.ends_with("[truncated]"));
        assert!(cut.starts_with("éé"));
    }
}
