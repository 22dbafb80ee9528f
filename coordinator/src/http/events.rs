//! `GET /api/runs/{id}/events`: the run as Server-Sent Events, for its console page. An
//! event `run` carries `{"run": RunInfo}` each time the run changes (the applied state
//! moved, or the leader's soft state such as a shard's circuit breaker did); the stream
//! ends after the event that shows the run ended, when the caller may no longer read it
//! (token revoked or expired), or when the client leaves (found at the latest by the
//! keep-alive comment). At most `--http-max-streams` streams are open per node; beyond
//! that the answer is 503 and the page polls `GET /api/runs/{id}` instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use apitap_proto::v1::RunInfo;
use serde::Serialize;
use tonic::Status;

use super::api::run_of;
use super::context::Ctx;
use super::reply::{self, ErrorBody};

/// How often the leader's soft state (breaker waits, workers) is looked at again when no
/// Raft entry was applied.
const SOFT_EVERY: Duration = Duration::from_secs(1);

/// Least time between two looks at the run, however fast entries are applied.
const MIN_GAP: Duration = Duration::from_millis(200);

/// A comment line this often lets a stream find out that its client has left.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The streams open on this node, at most `max` (`--http-max-streams`).
#[derive(Debug)]
pub struct Streams {
    open: AtomicUsize,
    max: usize,
}

/// One open stream; dropping it (the stream ended or the client left) frees its place.
#[derive(Debug)]
pub struct StreamSlot(Arc<Streams>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Streams {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// A place for one more stream, or `None` when `max` are open.
    pub fn open(self: &Arc<Self>) -> Option<StreamSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamSlot(self.clone()))
    }

    /// Streams open now.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// The data of a `run` event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunEvent {
    pub run: RunInfo,
}

const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled"];

/// The run as a stream of Server-Sent Events (role viewer, as `GET /api/runs/{id}`).
#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "read", params(("id" = u64, Path)),
    responses(
        (status = 200, description = "`text/event-stream`: events `run` with a RunEvent as data, until the run ends", body = RunEvent, content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, description = "--http-max-streams streams are open; poll GET /api/runs/{id}", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run_events(cx: Ctx, id: web::Path<u64>) -> HttpResponse {
    let id = *id;
    if let Err(e) = cx
        .authorize("GetRun")
        .and_then(|(caller, _)| run_of(&cx.node, &caller, id))
    {
        return reply::refused(&cx.node, &e);
    }
    let Some(streams) = cx.req.app_data::<web::Data<Arc<Streams>>>() else {
        return reply::refused(&cx.node, &Status::internal("no stream limit configured"));
    };
    let Some(slot) = streams.open() else {
        return HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE).json(ErrorBody {
            error: format!(
                "{} event streams are open on this node, its most (--http-max-streams); poll \
                 GET /api/runs/{id} instead, or raise the limit",
                streams.max
            ),
            leader_id: None,
            leader_addr: None,
        });
    };
    let watch = Watch {
        metrics: cx.node.raft.metrics(),
        cx,
        id,
        last: None,
        applied: None,
        looked: None,
        sent: Instant::now(),
        done: false,
        _slot: slot,
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures::stream::unfold(watch, Watch::next))
}

/// One stream's state between events.
struct Watch {
    cx: Ctx,
    id: u64,
    /// Wakes the stream when Raft's metrics change (an entry applied, among others).
    metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
    /// The data of the last event sent.
    last: Option<String>,
    /// The applied index at the last look.
    applied: Option<u64>,
    looked: Option<Instant>,
    /// When something was last written (an event or a keep-alive).
    sent: Instant,
    done: bool,
    _slot: StreamSlot,
}

impl Watch {
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Self)> {
        loop {
            if self.done {
                return None;
            }
            let applied = self.metrics.borrow().last_applied.map(|l| l.index);
            let due = self.looked.is_none_or(|t| {
                t.elapsed() >= SOFT_EVERY || (applied != self.applied && t.elapsed() >= MIN_GAP)
            });
            if due {
                self.applied = applied;
                self.looked = Some(Instant::now());
                if let Some(frame) = self.look() {
                    self.sent = Instant::now();
                    return Some((Ok(frame), self));
                }
            }
            if self.sent.elapsed() >= KEEPALIVE {
                self.sent = Instant::now();
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), self));
            }
            let wait = if applied != self.applied {
                MIN_GAP
            } else {
                SOFT_EVERY
            };
            tokio::select! {
                r = self.metrics.changed() => if r.is_err() { return None },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The next frame, if the run changed since the last one (or the caller may no longer
    /// see it: then a last `gone` event).
    fn look(&mut self) -> Option<Bytes> {
        let run = self
            .cx
            .authorize("GetRun")
            .and_then(|(caller, _)| run_of(&self.cx.node, &caller, self.id));
        match run {
            Err(e) => {
                self.done = true;
                let body = serde_json::json!({ "error": e.message() });
                Some(frame("gone", &body.to_string()))
            }
            Ok(run) => {
                let terminal = TERMINAL.contains(&run.state.as_str());
                let data = serde_json::to_string(&RunEvent { run }).ok()?;
                if self.last.as_deref() == Some(data.as_str()) {
                    return None;
                }
                self.done = terminal;
                let f = frame("run", &data);
                self.last = Some(data);
                Some(f)
            }
        }
    }
}

/// One Server-Sent Event; `data` is one line of JSON.
fn frame(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_bounded_and_a_closed_one_frees_its_place() {
        let s = Streams::new(2);
        let a = s.open().expect("first");
        let b = s.open().expect("second");
        assert!(s.open().is_none(), "a third is refused");
        assert_eq!(s.count(), 2);
        drop(a);
        let c = s.open().expect("a freed place is taken again");
        drop((b, c));
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn a_frame_is_one_event_with_one_data_line() {
        let f = frame("run", r#"{"run":{}}"#);
        assert_eq!(&f[..], b"event: run\ndata: {\"run\":{}}\n\n");
    }
}
