//! The coordinator's spans, and how a trace crosses the cluster (DESIGN §9):
//!
//! ```text
//! start_run (submit | run | every | cron)          coordinator, traceparent kept in the run
//! └─ grant_lease (pipeline, run, shard, worker, fence)   traceparent kept in the shard
//!    ├─ lease → fetch / transform / load           worker, parent handed over with the lease
//!    ├─ complete_shard                             coordinator, when the holder reports
//!    └─ expire_lease                               coordinator, when the holder went silent
//! ```
//!
//! The parents live in the replicated state, so a trace survives a leader change: a new
//! leader's expiry and the next grant still join the run's trace. Without an OTLP exporter
//! no context is produced and nothing is stored.

use apitap_common::trace_context;
use tracing::field::Empty;
use tracing::Span;

use crate::state::command::CommandResult;
use crate::state::model::{Run, Shard};

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `apitapctl submit` of a pipeline without a schedule.
    Submit,
    /// `apitapctl run`.
    Run,
    /// An `every` schedule.
    Every,
    /// A `cron` schedule.
    Cron,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Submit => "submit",
            Trigger::Run => "run",
            Trigger::Every => "every",
            Trigger::Cron => "cron",
        }
    }
}

/// The root span of a run; `run_id` is recorded once the run is committed.
pub fn start_run(pipeline: &str, trigger: Trigger) -> Span {
    tracing::info_span!(
        "start_run",
        pipeline = %pipeline,
        trigger = trigger.as_str(),
        run_id = Empty,
        error = Empty,
    )
}

/// The grant of `shard` of `run` to `worker`, a child of the run's span; `fence` is recorded
/// once the grant is committed.
pub fn grant_lease(run: &Run, shard: u32, worker: &str) -> Span {
    let span = tracing::info_span!(
        "grant_lease",
        pipeline = %run.pipeline,
        run_id = run.id,
        shard,
        worker = %worker,
        fence = Empty,
        error = Empty,
    );
    trace_context::set_parent(&span, run.trace.as_deref());
    span
}

/// A span about `shard`'s current lease, a child of the grant's span; extra fields follow.
macro_rules! lease_span {
    ($name:literal, $run:expr, $shard:expr $(, $field:ident)*) => {{
        let span = tracing::info_span!(
            $name,
            pipeline = %$run.pipeline,
            run_id = $run.id,
            shard = $shard.def.index,
            fence = $shard.fence,
            worker = $shard.worker.as_deref().unwrap_or_default(),
            error = tracing::field::Empty
            $(, $field)*
        );
        trace_context::set_parent(&span, $shard.trace.as_deref());
        span
    }};
}

/// The holder's report that `shard`'s lease ended.
pub fn complete_shard(run: &Run, shard: &Shard, ok: bool) -> Span {
    lease_span!("complete_shard", run, shard, ok)
}

/// The expiry of `shard`'s lease after its holder missed its heartbeats.
pub fn expire_lease(run: &Run, shard: &Shard) -> Span {
    lease_span!("expire_lease", run, shard)
}

/// Records on `span` why the command it covered did not commit (no leader any more, a
/// rejected command, or an earlier proposal of the same tick failing).
pub fn record_failure(span: &Span, error: &dyn std::fmt::Display) {
    span.record("error", tracing::field::display(error));
}

/// Records on `span` what the command it covered produced (the run id, the fence).
pub fn record_result(span: &Span, result: &CommandResult) {
    match result {
        CommandResult::RunStarted { run_id }
        | CommandResult::PipelineStored {
            run_id: Some(run_id),
            ..
        } => {
            span.record("run_id", run_id);
        }
        CommandResult::Granted { fence, .. } => {
            span.record("fence", fence);
        }
        CommandResult::Rejected { reason } => record_failure(span, reason),
        _ => {}
    }
}
