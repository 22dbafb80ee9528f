//! Bounds on one page's transform, so that a pipeline's SQL (a self-join that explodes, a
//! sort of a huge page) cannot take a worker's memory or hold a lease's thread forever.

use std::time::Duration;

/// Memory DataFusion's operators may reserve for one page (sorts, joins, aggregations
/// count; a scalar function's own output, e.g. `repeat`, is bounded by the page size and
/// the records, not by this pool). Knob: `--transform-max-memory-mib`.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 512 << 20;

/// Longest one page's SQL may run before it is cancelled. Knob: `--transform-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformLimits {
    pub max_memory_bytes: usize,
    pub timeout: Duration,
}

impl Default for TransformLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}
