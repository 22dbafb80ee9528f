//! W3C trace context (`traceparent`) carried across process boundaries inside ApiTap's own
//! records, so that one trace runs from the coordinator's run and lease grant through the
//! worker's fetch, transform and load.
//!
//! The coordinator stores the `traceparent` of a run's start in the run, and that of each
//! lease grant in the shard; the worker receives the grant's with the lease. Both functions
//! are no-ops when spans are not exported (no OTLP layer): nothing is stored then.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const HEADER: &str = "traceparent";

/// The `traceparent` of `span`, or `None` when the span is not exported.
pub fn traceparent(span: &Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(HEADER)
}

/// Makes `span` a child of the remote span `traceparent`. Must be called before the span is
/// entered or its context read; a malformed or absent value leaves the span a root.
pub fn set_parent(span: &Span, traceparent: Option<&str>) {
    let Some(value) = traceparent.filter(|v| !v.is_empty()) else {
        return;
    };
    let carrier = HashMap::from([(HEADER.to_string(), value.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporter_nothing_is_carried() {
        let span = tracing::info_span!("x");
        assert_eq!(traceparent(&span), None);
        // Harmless on a span nobody records, and on malformed input.
        set_parent(&span, Some("00-garbage"));
        set_parent(&span, None);
    }

    #[test]
    fn a_child_continues_the_parents_trace() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;

        // Filtered as in `telemetry::init`, which the context has to pass through.
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("test"))
                .with_filter(tracing_subscriber::filter::filter_fn(|_| true)),
        );
        tracing::subscriber::with_default(subscriber, || {
            let grant = tracing::info_span!("grant");
            let parent = traceparent(&grant).expect("an exported span has a traceparent");
            let fields: Vec<&str> = parent.split('-').collect();
            assert_eq!(fields.len(), 4, "{parent}");

            let lease = tracing::info_span!("lease");
            set_parent(&lease, Some(&parent));
            let child = traceparent(&lease).unwrap();
            let child_fields: Vec<&str> = child.split('-').collect();
            assert_eq!(
                child_fields[1], fields[1],
                "same trace id: {parent} / {child}"
            );
            assert_ne!(child_fields[2], fields[2], "a span of its own");

            let root = tracing::info_span!("other");
            set_parent(&root, Some("00-not-a-trace-01"));
            let other = traceparent(&root).unwrap();
            assert_ne!(
                other.split('-').nth(1),
                Some(fields[1]),
                "malformed: a new trace"
            );
        });
    }
}
