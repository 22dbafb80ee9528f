//! The open batch: pages fetched and transformed but not yet committed. They commit together,
//! in one sink transaction with the checkpoint after the last of them, once they hold
//! `spec.batch.max_records` source records or `spec.batch.max_wait` has passed since the
//! first (DESIGN §6), or once the worker's open batches together hold more records than
//! its [`BatchMemory`] allows. Until then nothing of them is in the sink, so losing the
//! batch (a crash, a lost lease) loses nothing: the shard resumes from the last committed
//! checkpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apitap_common::checkpoint::Checkpoint;
use apitap_common::spec::Batch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::batch_memory::BatchMemory;

/// One fetched and transformed page, waiting for its batch to commit.
#[derive(Debug)]
pub(super) struct PendingPage {
    /// The rows to load; `None` when the page had none.
    pub rows: Option<RecordBatch>,
    /// The page's raw records, for the dead-letter table should the page not load.
    pub records: Vec<Value>,
    /// The shard's checkpoint once this page is committed.
    pub after: Checkpoint,
}

/// The pages of the open batch, in cursor order. All their rows share one Arrow schema, so
/// they load as one batch; a page of another shape waits for the next batch. Its records
/// count in the worker's [`BatchMemory`] until the batch is taken or dropped.
#[derive(Debug)]
pub(super) struct Pending {
    pages: Vec<PendingPage>,
    /// Source records of the pages (what `max_records` counts).
    records: u64,
    /// When the first page was added: `max_wait` counts from here.
    opened: Option<Instant>,
    schema: Option<SchemaRef>,
    memory: Arc<BatchMemory>,
}

impl Pending {
    /// An empty batch whose records count in `memory`.
    pub fn new(memory: Arc<BatchMemory>) -> Self {
        Self {
            pages: Vec::new(),
            records: 0,
            opened: None,
            schema: None,
            memory,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The checkpoint after the last pending page, if any.
    pub fn last(&self) -> Option<&Checkpoint> {
        self.pages.last().map(|p| &p.after)
    }

    /// Whether `rows` can join the batch: the batch has no rows yet, the page has none, or
    /// both have the same schema.
    pub fn fits(&self, rows: Option<&RecordBatch>) -> bool {
        match (&self.schema, rows) {
            (Some(ours), Some(b)) => ours == &b.schema() || **ours == *b.schema(),
            _ => true,
        }
    }

    /// Adds a page that [`Pending::fits`].
    pub fn push(&mut self, page: PendingPage, now: Instant) {
        self.opened.get_or_insert(now);
        if self.schema.is_none() {
            self.schema = page.rows.as_ref().map(RecordBatch::schema);
        }
        self.records += page.records.len() as u64;
        self.memory.hold(page.records.len() as u64);
        self.pages.push(page);
    }

    /// Whether the batch must commit now: it holds `max_records` records, its time is up,
    /// its last page ends the shard, or the worker's open batches hold too much.
    pub fn is_due(&self, limits: &Batch, now: Instant) -> bool {
        !self.is_empty()
            && (self.records >= limits.max_records
                || self.memory.is_over()
                || self.deadline(limits.max_wait).is_some_and(|d| now >= d)
                || self.last().is_some_and(Checkpoint::is_done))
    }

    /// When the batch must commit however few records it has; `None` while it is empty.
    pub fn deadline(&self, max_wait: Duration) -> Option<Instant> {
        self.opened.map(|t| t + max_wait)
    }

    /// Empties the batch, returning its pages.
    pub fn take(&mut self) -> Vec<PendingPage> {
        let pages = std::mem::take(&mut self.pages);
        self.memory.release(self.records);
        self.records = 0;
        self.opened = None;
        self.schema = None;
        pages
    }
}

impl Default for Pending {
    /// A batch with a budget of its own (the default's), for tests.
    fn default() -> Self {
        Self::new(Arc::default())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.memory.release(self.records);
    }
}

/// The rows of `pages` as one Arrow batch (`None` when none has rows).
pub(super) fn concat(pages: &[PendingPage]) -> Result<Option<RecordBatch>, String> {
    let mut batches = pages.iter().filter_map(|p| p.rows.as_ref()).peekable();
    let Some(first) = batches.peek() else {
        return Ok(None);
    };
    let schema = first.schema();
    concat_batches(&schema, batches)
        .map(Some)
        .map_err(|e| format!("joining the batch's pages: {e}"))
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
