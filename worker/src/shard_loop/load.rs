//! The loading side of a lease: takes the pages [`prefetch`](super::prefetch) fetched, in
//! cursor order, transforms each, gathers them into the open [`batch`](super::batch), and
//! commits each batch with the checkpoint after its last page in one fenced sink transaction.
//! A page the user's SQL or data cannot get through is dead-lettered on its own, exactly
//! as if it had been committed alone: the pages before it commit first.

use std::time::{Duration, Instant};

use apitap_common::checkpoint::Checkpoint;
use apitap_common::error::ErrorClass;
use apitap_common::spec::Batch;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::batch::{concat, Pending, PendingPage};
use super::prefetch::Ahead;
use super::{dead_letter, fail, sink_outcome, Outcome};
use crate::fetch::Page;
use crate::lease::LeaseWork;
use crate::shard_limits;
use crate::sink::{AnySink, ShardRef, Sink};
use crate::spans::{stage_span, Stage};
use crate::transform::Transformer;

/// How often, at most, committed progress is reported while a lease runs.
const REPORT_EVERY: Duration = Duration::from_millis(500);

/// What one wake-up of the loader is about.
enum Event {
    Stop,
    Due,
    Page(Option<Ahead>),
}

pub(crate) struct Loader<'a, P: Fn(&Checkpoint)> {
    pub work: &'a LeaseWork,
    pub shard: &'a ShardRef,
    pub sink: &'a mut AnySink,
    pub transformer: &'a Transformer,
    pub limits: Batch,
    /// Receives each committed checkpoint (at most every [`REPORT_EVERY`], and the last).
    pub progress: P,
    /// The checkpoint in the sink: where the next lease would resume.
    pub committed: Checkpoint,
    pub pending: Pending,
    pub last_report: Option<Instant>,
}

impl<P: Fn(&Checkpoint)> Loader<'_, P> {
    /// Loads pages until the source is exhausted and committed, the fetching fails, the
    /// lease is fenced out, or `stop` asks for a stop (the open batch commits first).
    pub(crate) async fn run(
        mut self,
        mut pages: mpsc::Receiver<Ahead>,
        mut stop: watch::Receiver<bool>,
    ) -> Outcome {
        loop {
            if self.committed.is_done() {
                return Outcome::Done(self.committed);
            }
            let deadline = self.pending.deadline(self.limits.max_wait);
            let event = tokio::select! {
                biased;
                () = stop_requested(&mut stop) => Event::Stop,
                () = until(deadline) => Event::Due,
                ahead = pages.recv() => Event::Page(ahead),
            };
            let step = match event {
                Event::Stop => self
                    .flush()
                    .await
                    .map(|()| Some(Outcome::Stopped(self.committed.clone()))),
                Event::Due => self.flush().await.map(|()| None),
                Event::Page(Some(Ok(page))) => self.accept(page).await.map(|()| None),
                Event::Page(Some(Err(f))) => self.flush().await.map(|()| {
                    // A fetch cut short by the stop (a wait on an open circuit breaker):
                    // the lease stops where its commits got to.
                    Some(if f.class == ErrorClass::Transient && *stop.borrow() {
                        Outcome::Stopped(self.committed.clone())
                    } else {
                        fail(f.class, f.error, Some(&self.committed))
                    })
                }),
                Event::Page(None) => Ok(Some(fail(
                    ErrorClass::Internal,
                    "the page fetching ended before the source was exhausted",
                    Some(&self.committed),
                ))),
            };
            match step {
                Ok(None) => {}
                Ok(Some(outcome)) | Err(outcome) => return outcome,
            }
        }
    }

    /// Transforms `page` and adds it to the open batch; commits when the batch is due.
    async fn accept(&mut self, page: Page) -> Result<(), Outcome> {
        let work = self.work;
        let rows = match self
            .transformer
            .run(&page.records)
            .instrument(stage_span(Stage::Transform, work))
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                // The pages before this one are good: they commit, then this one is kept.
                self.flush().await?;
                let (class, error) = (e.class(), e.to_string());
                return Err(self.dead_letter(&page.records, class, error).await);
            }
        };
        work.metrics
            .records_transformed
            .add(rows.as_ref().map_or(0, |b| b.num_rows() as u64));
        if !self.pending.fits(rows.as_ref()) {
            self.flush().await?;
        }
        let before = self.pending.last().unwrap_or(&self.committed).clone();
        let after = self.next_checkpoint(before, &page);
        let records = page.records;
        self.pending.push(
            PendingPage {
                rows,
                records,
                after,
            },
            Instant::now(),
        );
        if self.pending.is_due(&self.limits, Instant::now()) {
            self.flush().await?;
        }
        Ok(())
    }

    /// The shard's checkpoint once `page`, fetched at `before`, is committed.
    fn next_checkpoint(&self, before: Checkpoint, page: &Page) -> Checkpoint {
        let work = self.work;
        let watermark = match &work.pipeline.spec.incremental {
            Some(inc) => shard_limits::advance_watermark(
                &work.metrics,
                inc,
                before.watermark.clone(),
                &page.records,
                apitap_common::time::now_ms(),
            ),
            // A full refresh keeps its response's validators (`conditional`) instead.
            None => page.validators.clone(),
        };
        Checkpoint {
            position: page.next.clone(),
            pages: before.pages + 1,
            records: before.records + page.records.len() as u64,
            watermark,
        }
    }

    /// Commits the open batch, if any.
    pub(crate) async fn flush(&mut self) -> Result<(), Outcome> {
        let pages = self.pending.take();
        let Some(last) = pages.last() else {
            return Ok(());
        };
        if pages.len() == 1 || self.sink.commits_pages_alone() {
            return self.commit_alone(pages).await;
        }
        let rows =
            concat(&pages).map_err(|e| fail(ErrorClass::Internal, e, Some(&self.committed)))?;
        let after = last.after.clone();
        match self.commit(rows.as_ref(), &after).await {
            Ok(()) => Ok(()),
            // One of the pages holds what the sink refuses: commit them one by one, so the
            // good ones land and the bad one is dead-lettered exactly as on its own.
            Err(e) if e.class() == ErrorClass::User => self.commit_alone(pages).await,
            Err(e) => Err(sink_outcome(e, Some(&self.committed))),
        }
    }

    /// Commits `pages` one transaction each, in order; a page the sink refuses as the
    /// user's fault is dead-lettered and ends the lease.
    async fn commit_alone(&mut self, pages: Vec<PendingPage>) -> Result<(), Outcome> {
        for page in pages {
            match self.commit(page.rows.as_ref(), &page.after).await {
                Ok(()) => {}
                Err(e) if e.class() == ErrorClass::User => {
                    return Err(self
                        .dead_letter(&page.records, ErrorClass::User, e.to_string())
                        .await);
                }
                Err(e) => return Err(sink_outcome(e, Some(&self.committed))),
            }
        }
        Ok(())
    }

    /// One fenced transaction: `rows` and the checkpoint `after`. On success `after` is
    /// the committed checkpoint (and reported).
    async fn commit(
        &mut self,
        rows: Option<&arrow::record_batch::RecordBatch>,
        after: &Checkpoint,
    ) -> Result<(), crate::sink::SinkError> {
        let work = self.work;
        let committing = Instant::now();
        crash_point!("sink::before_commit");
        self.sink
            .commit(self.shard, work.fence, rows, after)
            .instrument(stage_span(Stage::Load, work))
            .await?;
        // The rows and their checkpoint are in the sink; the coordinator has not heard yet.
        crash_point!("sink::after_commit");
        let loaded = rows.map_or(0, |b| b.num_rows() as u64);
        work.metrics.observe_commit(committing.elapsed(), loaded);
        self.committed = after.clone();
        if after.is_done() || self.last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            (self.progress)(after);
            self.last_report = Some(Instant::now());
        }
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        records: &[serde_json::Value],
        class: ErrorClass,
        error: String,
    ) -> Outcome {
        let committed = self.committed.clone();
        dead_letter(
            self.sink, self.shard, self.work, &committed, records, class, error,
        )
        .await
    }
}

/// Resolves once `stop` asks for a stop; never if its sender is gone.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves at `deadline`; never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
