//! The work of one lease: claim the shard in the sink, then fetch → transform → commit
//! until the source is exhausted (DESIGN §6). Plain async code; the `ShardRunner` actor
//! owns it.
//!
//! Modules: `prefetch` fetches pages in cursor order a bounded number ahead; `load`
//! transforms them and commits them in batches (`spec.batch`), each batch one fenced sink
//! transaction with the checkpoint after its last page; `batch` is the open batch.

use apitap_common::checkpoint::Checkpoint;
use apitap_common::error::ErrorClass;
use tokio::sync::{mpsc, watch};

use crate::fetch::Fetcher;
pub use crate::lease::LeaseWork;
use crate::metrics::FetchObserver;
use crate::shard_limits::ShardBudget;
use crate::sink::{self, DeadPage, ShardRef, Sink, SinkError};
use crate::transform::Transformer;

/// A named fail point that, when set (`FAILPOINTS="sink::after_commit=return"`, see
/// docs/chaos.md), aborts the process on the spot, as SIGKILL would: no drain, no lease
/// release, no last report. Compiled only with the `failpoints` feature; nothing otherwise.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| { std::process::abort() });
    };
}

mod batch;
mod load;
mod prefetch;

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
        /// The page written to the sink's dead-letter table before the failure, if any.
        dead_letters: Option<DeadLettered>,
    },
}

/// A page kept in the sink's dead-letter table, as the completion report tells the
/// coordinator: how many records, and the first few of them, cut to the wire's bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLettered {
    pub records: u64,
    pub sample: Vec<apitap_proto::v1::DeadLetter>,
}

impl DeadLettered {
    /// The page `page` of `records` dead-lettered with `error`.
    pub fn new(page: u64, records: &[serde_json::Value], error: &str) -> Self {
        use apitap_proto::limits::{
            truncate_utf8, MAX_DEAD_LETTER_RECORD_BYTES, MAX_DEAD_LETTER_SAMPLE, MAX_ERROR_BYTES,
        };
        let error = truncate_utf8(error, MAX_ERROR_BYTES);
        Self {
            records: records.len() as u64,
            sample: records
                .iter()
                .take(MAX_DEAD_LETTER_SAMPLE)
                .map(|r| apitap_proto::v1::DeadLetter {
                    page,
                    error: error.clone(),
                    record: truncate_utf8(&r.to_string(), MAX_DEAD_LETTER_RECORD_BYTES),
                })
                .collect(),
        }
    }
}

fn fail(class: ErrorClass, error: impl ToString, checkpoint: Option<&Checkpoint>) -> Outcome {
    Outcome::Failed {
        error: error.to_string(),
        class,
        checkpoint: checkpoint.cloned(),
        dead_letters: None,
    }
}

fn sink_outcome(e: SinkError, cp: Option<&Checkpoint>) -> Outcome {
    match e {
        SinkError::Fenced { stored, .. } => Outcome::Fenced { stored },
        other => fail(other.class(), other, cp),
    }
}

/// Runs the lease to its end. `progress` receives committed checkpoints; `stop` asks for a
/// stop at the next batch boundary (the open batch commits first).
///
/// Two futures share the lease: [`prefetch`] fetches pages in cursor order, at most
/// `spec.batch.prefetch_pages` ahead, and [`load::Loader`] transforms them and commits them
/// in batches. When the loader ends, pages fetched ahead are dropped uncommitted.
pub async fn run(
    work: LeaseWork,
    http: reqwest::Client,
    progress: impl Fn(&Checkpoint) + Send,
    stop: watch::Receiver<bool>,
) -> Outcome {
    let (lease, cp) = match Lease::open(&work, http, stop.clone()).await {
        Ok(opened) => opened,
        Err(outcome) => return outcome,
    };
    let Lease {
        work,
        shard,
        mut sink,
        fetcher,
        fetches,
        transformer,
        budget,
        _demand,
    } = lease;
    let limits = work.pipeline.spec.batch.clone();
    let (ahead, pages) = mpsc::channel(limits.prefetch_pages.max(1));
    let fetching = prefetch::Prefetch {
        work,
        fetcher: &fetcher,
        fetches: &fetches,
        budget,
    }
    .run(cp.clone(), ahead);
    let loading = load::Loader {
        work,
        shard: &shard,
        sink: &mut sink,
        transformer: &transformer,
        limits,
        progress,
        committed: cp,
        pending: batch::Pending::new(work.batch_memory.clone()),
        last_report: None,
    }
    .run(pages, stop);
    tokio::pin!(loading);
    tokio::select! {
        outcome = &mut loading => outcome,
        () = fetching => loading.await,
    }
}

/// What working on one claimed lease needs, page after page.
struct Lease<'a> {
    work: &'a LeaseWork,
    shard: ShardRef,
    sink: sink::AnySink,
    fetcher: Fetcher,
    fetches: FetchObserver,
    transformer: Transformer,
    budget: ShardBudget,
    /// Withdraws this lease's rate-budget demand when the lease ends.
    _demand: Option<DemandGuard>,
}

impl<'a> Lease<'a> {
    /// Opens the sink, claims the shard under the lease's fence, and builds the fetcher
    /// and transformer; the claimed checkpoint is where the lease resumes.
    async fn open(
        work: &'a LeaseWork,
        http: reqwest::Client,
        stop: watch::Receiver<bool>,
    ) -> Result<(Self, Checkpoint), Outcome> {
        let shard = ShardRef {
            pipeline: work.pipeline.name().to_string(),
            run_id: work.run_id,
            shard: work.shard,
        };
        let mut sink = sink::open(&work.pipeline.spec.sink, work.sink_reach())
            .await
            .map_err(|e| sink_outcome(e, None))?;
        let cp = sink
            .claim(&shard, work.fence)
            .await
            .map_err(|e| sink_outcome(e, None))?;
        tracing::info!(
            run_id = work.run_id,
            shard = work.shard,
            fence = work.fence,
            pages = cp.pages,
            records = cp.records,
            "lease claimed"
        );
        let fetcher = Fetcher::new(http, &work.pipeline.spec.source.http, &work.vars)
            .map_err(|e| fail(e.class(), e, Some(&cp)))?
            .with_egress(work.egress.clone())
            .with_token_cache(
                &work.tokens,
                &format!(
                    "{}/{}",
                    work.pipeline.metadata.namespace,
                    work.pipeline.name()
                ),
            )
            .with_breakers(work.metrics.breakers.clone())
            .with_wait_slot(work.breaker_wait.clone())
            .with_stop(stop);
        let (fetcher, demand) = with_budget(fetcher, work);
        let (fetcher, fetches) = FetchObserver::attach(&work.metrics, fetcher, &cp.position);
        let declared = work.pipeline.spec.schema.as_deref();
        let transformer = match &work.pipeline.spec.transform {
            Some(t) => Transformer::new(&t.sql, declared),
            None => Transformer::passthrough(declared),
        }
        .with_limits(work.transform_limits);
        let lease = Self {
            work,
            shard,
            sink,
            fetcher,
            fetches,
            transformer,
            budget: ShardBudget::new(&work.pipeline.spec.source.http.limits),
            _demand: demand,
        };
        Ok((lease, cp))
    }
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
        let page = cp.pages + 1;
        match sink
            .dead_letter(
                shard,
                work.fence,
                DeadPage {
                    page,
                    records,
                    error: &error,
                },
            )
            .await
        {
            Ok(()) => {
                tracing::warn!(run_id = work.run_id, shard = work.shard, records = records.len(), %error, "page dead-lettered");
                let dead = DeadLettered::new(page, records, &error);
                return Outcome::Failed {
                    error,
                    class,
                    checkpoint: Some(cp.clone()),
                    dead_letters: Some(dead),
                };
            }
            Err(e) => return sink_outcome(e, Some(cp)),
        }
    }
    fail(class, error, Some(cp))
}

/// Takes a permit from the worker's rate budget before every request of a pipeline with a
/// `rate_limit`, and turns an upstream 429's Retry-After into a cluster-wide back-off. The
/// returned guard withdraws this runner's demand when the shard ends.
fn with_budget(fetcher: Fetcher, work: &LeaseWork) -> (Fetcher, Option<DemandGuard>) {
    let (Some(budget), Some(rl)) = (work.budget.clone(), work.pipeline.spec.rate_limit.as_ref())
    else {
        return (fetcher, None);
    };
    let key = rl.key.clone();
    budget.demand(&key, rl.requests_per_second, true);
    let guard = DemandGuard {
        budget: budget.clone(),
        key: key.clone(),
    };
    let (b1, k1) = (budget.clone(), key.clone());
    let fetcher = fetcher
        .with_permit(move || {
            let (b, k) = (b1.clone(), k1.clone());
            async move { b.acquire(&k).await }
        })
        .on_retry(move |ev| {
            if ev.status == Some(429) {
                if let Some(after) = ev.retry_after {
                    budget.backoff(&key, after);
                }
            }
        });
    (fetcher, Some(guard))
}

/// Withdraws a runner's demand for a rate-limit key when dropped.
struct DemandGuard {
    budget: crate::rate_budget::BudgetHandle,
    key: String,
}

impl Drop for DemandGuard {
    fn drop(&mut self) {
        self.budget.demand(&self.key, 0.0, false);
    }
}

#[cfg(test)]
mod tests {
    use super::DeadLettered;
    use apitap_proto::limits::{MAX_DEAD_LETTER_RECORD_BYTES, MAX_DEAD_LETTER_SAMPLE};

    #[test]
    fn a_dead_lettered_page_reports_its_count_and_a_bounded_sample() {
        let records: Vec<serde_json::Value> = (0..50)
            .map(|i| serde_json::json!({"id": i, "pad": "x".repeat(2_000)}))
            .collect();
        let d = DeadLettered::new(7, &records, "cannot cast");
        assert_eq!(d.records, 50);
        assert_eq!(d.sample.len(), MAX_DEAD_LETTER_SAMPLE);
        for s in &d.sample {
            assert_eq!((s.page, s.error.as_str()), (7, "cannot cast"));
            assert!(s.record.len() <= MAX_DEAD_LETTER_RECORD_BYTES);
        }
    }
}
