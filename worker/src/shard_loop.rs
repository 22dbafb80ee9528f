//! The work of one lease: claim the shard in the sink, then fetch → transform → commit
//! page by page until the source is exhausted (DESIGN §6). Plain async code; the
//! `ShardRunner` actor owns it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apitap_common::checkpoint::{advance_watermark, Checkpoint};
use apitap_common::error::ErrorClass;
use apitap_common::spec::Pipeline;
use tokio::sync::watch;

use crate::fetch::Fetcher;
use crate::sink::{self, ShardRef, Sink, SinkError};
use crate::transform::Transformer;

/// A granted lease with everything needed to work on it.
#[derive(Debug, Clone)]
pub struct LeaseWork {
    pub run_id: u64,
    pub shard: u32,
    pub fence: u64,
    pub shard_key: String,
    /// Secrets already substituted.
    pub pipeline: Pipeline,
    pub vars: BTreeMap<String, String>,
}

/// How a lease's work ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The source is exhausted and everything is committed.
    Done(Checkpoint),
    /// A newer lease owns the shard; this one must not touch it again.
    Fenced { stored: u64 },
    /// Stopped at a batch boundary on request (drain).
    Stopped(Checkpoint),
    Failed {
        error: String,
        class: ErrorClass,
        checkpoint: Option<Checkpoint>,
    },
}

fn fail(class: ErrorClass, error: impl ToString, checkpoint: Option<&Checkpoint>) -> Outcome {
    Outcome::Failed {
        error: error.to_string(),
        class,
        checkpoint: checkpoint.cloned(),
    }
}

fn sink_outcome(e: SinkError, cp: Option<&Checkpoint>) -> Outcome {
    match e {
        SinkError::Fenced { stored, .. } => Outcome::Fenced { stored },
        other => fail(other.class(), other, cp),
    }
}

/// Runs the lease to its end. `progress` receives each committed checkpoint; `stop` asks
/// for a stop at the next batch boundary.
pub async fn run(
    work: LeaseWork,
    http: reqwest::Client,
    progress: impl Fn(&Checkpoint) + Send,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let shard = ShardRef {
        pipeline: work.pipeline.name().to_string(),
        run_id: work.run_id,
        shard: work.shard,
    };
    let mut sink = match sink::open(&work.pipeline.spec.sink).await {
        Ok(s) => s,
        Err(e) => return sink_outcome(e, None),
    };
    let mut cp = match sink.claim(&shard, work.fence).await {
        Ok(cp) => cp,
        Err(e) => return sink_outcome(e, None),
    };
    tracing::info!(
        run_id = work.run_id,
        shard = work.shard,
        fence = work.fence,
        pages = cp.pages,
        records = cp.records,
        "lease claimed"
    );
    let fetcher = match Fetcher::new(http, &work.pipeline.spec.source.http, &work.vars) {
        Ok(f) => f,
        Err(e) => return fail(e.class(), e, Some(&cp)),
    };
    let transformer = Transformer::new(work.pipeline.sql(), work.pipeline.spec.schema.as_deref());
    let mut last_report = Instant::now() - Duration::from_secs(10);
    while !cp.is_done() {
        if *stop.borrow_and_update() {
            return Outcome::Stopped(cp);
        }
        let page = match fetcher.fetch(&cp.position, cp.pages, cp.records).await {
            Ok(p) => p,
            Err(e) => return fail(e.class(), e, Some(&cp)),
        };
        let batch = match transformer.run(&page.records).await {
            Ok(b) => b,
            Err(e) => {
                return dead_letter(
                    &mut sink,
                    &shard,
                    &work,
                    &cp,
                    &page.records,
                    e.class(),
                    e.to_string(),
                )
                .await
            }
        };
        let watermark = match &work.pipeline.spec.incremental {
            Some(inc) => advance_watermark(cp.watermark.clone(), &page.records, &inc.cursor_field),
            None => None,
        };
        let next = Checkpoint {
            position: page.next,
            pages: cp.pages + 1,
            records: cp.records + page.records.len() as u64,
            watermark,
        };
        if let Err(e) = sink.commit(&shard, work.fence, batch.as_ref(), &next).await {
            if e.class() == ErrorClass::User {
                return dead_letter(
                    &mut sink,
                    &shard,
                    &work,
                    &cp,
                    &page.records,
                    ErrorClass::User,
                    e.to_string(),
                )
                .await;
            }
            return sink_outcome(e, Some(&cp));
        }
        cp = next;
        if cp.is_done() || last_report.elapsed() >= Duration::from_millis(500) {
            progress(&cp);
            last_report = Instant::now();
        }
    }
    Outcome::Done(cp)
}

/// A page the user's SQL or data cannot get through: keep its raw records in the dead-letter
/// table with the error, then fail the shard with that error. Transient failures are not
/// dead-lettered; the shard is retried instead.
async fn dead_letter(
    sink: &mut impl Sink,
    shard: &ShardRef,
    work: &LeaseWork,
    cp: &Checkpoint,
    records: &[serde_json::Value],
    class: ErrorClass,
    error: String,
) -> Outcome {
    if class == ErrorClass::User && !records.is_empty() {
        match sink
            .dead_letter(shard, work.fence, cp.pages + 1, records, &error)
            .await
        {
            Ok(()) => {
                tracing::warn!(run_id = work.run_id, shard = work.shard, records = records.len(), %error, "page dead-lettered")
            }
            Err(e) => return sink_outcome(e, Some(cp)),
        }
    }
    fail(class, error, Some(cp))
}
