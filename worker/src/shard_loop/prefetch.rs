//! Fetching ahead of loading: one future fetches the shard's pages in cursor order and hands
//! them over through a channel of `spec.batch.prefetch_pages` places, so page N+1 is on its
//! way while page N is transformed and committed. Nothing here touches the sink: a page
//! fetched ahead and never committed is fetched again by whoever resumes the shard from its
//! committed checkpoint.

use apitap_common::checkpoint::Checkpoint;
use apitap_common::error::ErrorClass;
use apitap_common::limits::LimitError;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::fetch::{Fetcher, Page};
use crate::lease::LeaseWork;
use crate::metrics::FetchObserver;
use crate::shard_limits::{self, ShardBudget};
use crate::spans::{stage_span, Stage};

/// Why fetching stopped before the source was exhausted; the loader turns it into the
/// lease's outcome with the checkpoint that is committed by then.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub class: ErrorClass,
    pub error: String,
}

/// One page fetched ahead, or why the fetching ended.
pub(crate) type Ahead = Result<Page, Failure>;

/// What fetching needs; the loader holds the rest of the lease.
pub(super) struct Prefetch<'a> {
    pub work: &'a LeaseWork,
    pub fetcher: &'a Fetcher,
    pub fetches: &'a FetchObserver,
    pub budget: ShardBudget,
}

impl Prefetch<'_> {
    /// Fetches page after page from `from` until the source is exhausted, a fetch fails
    /// (sent as the last item), or the loader hangs up.
    pub(super) async fn run(mut self, from: Checkpoint, to: mpsc::Sender<Ahead>) {
        let mut at = from;
        while !at.is_done() {
            match self.fetch(&at).await {
                Ok(page) => {
                    at = Checkpoint {
                        position: page.next.clone(),
                        pages: at.pages + 1,
                        records: at.records + page.records.len() as u64,
                        watermark: None,
                    };
                    if to.send(Ok(page)).await.is_err() {
                        return;
                    }
                }
                Err(failure) => {
                    let _ = to.send(Err(failure)).await;
                    return;
                }
            }
        }
    }

    /// The page at `at`, within the shard's page, record and byte limits.
    async fn fetch(&mut self, at: &Checkpoint) -> Result<Page, Failure> {
        let work = self.work;
        let over = |e: LimitError| {
            shard_limits::report_budget(&work.metrics, &e);
            Failure {
                class: ErrorClass::User,
                error: e.to_string(),
            }
        };
        self.budget.before_fetch(at).map_err(over)?;
        let page = self
            .fetches
            .fetch(self.fetcher, &at.position, at.pages, at.records)
            .instrument(stage_span(Stage::Fetch, work))
            .await
            .map_err(|e| Failure {
                class: e.class(),
                error: e.to_string(),
            })?;
        self.budget
            .after_fetch(at, page.records.len(), page.bytes)
            .map_err(over)?;
        Ok(page)
    }
}
