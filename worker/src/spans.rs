//! Tracing spans of a lease: `lease` for its whole work, a child of the coordinator's
//! `grant_lease` span when the lease carries its trace context, and inside it one span per
//! stage of a page (`fetch`, `transform`, `load`). Each carries the lease's identity so
//! that logs and OTLP traces can be filtered by pipeline, run, shard, fence and worker
//! (DESIGN §9).

use apitap_common::trace_context;
use tracing::Span;

use crate::lease::LeaseWork;

/// A stage of the work on one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Fetch,
    Transform,
    Load,
}

/// The span of all the work on `work`'s lease, continuing the coordinator's trace.
pub fn lease_span(work: &LeaseWork) -> Span {
    let span = tracing::info_span!(
        "lease",
        pipeline = %work.pipeline.name(),
        run_id = work.run_id,
        shard = work.shard,
        fence = work.fence,
        worker = %work.worker,
    );
    trace_context::set_parent(&span, work.traceparent.as_deref());
    span
}

/// The span of `stage` for a page of `work`.
pub fn stage_span(stage: Stage, work: &LeaseWork) -> Span {
    let pipeline = work.pipeline.name();
    // Span names must be literals, hence one macro call per stage.
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                $name,
                pipeline = %pipeline,
                run_id = work.run_id,
                shard = work.shard,
                fence = work.fence,
                worker = %work.worker,
            )
        };
    }
    match stage {
        Stage::Fetch => span!("fetch"),
        Stage::Transform => span!("transform"),
        Stage::Load => span!("load"),
    }
}
