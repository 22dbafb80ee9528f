//! The retry loop around one page request: which failures are retried, how long to wait
//! (`Retry-After` or jittered exponential back-off) and what is logged.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apitap_common::retry::Backoff;
use apitap_common::spec::Retry;

use super::error::FetchError;

/// A `Retry-After` is never waited longer than this, whatever the retry settings.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// One retry the fetcher is about to wait for; handed to [`Fetcher::on_retry`](super::Fetcher::on_retry)
/// observers (e.g. to turn a 429's `Retry-After` into a cluster-wide back-off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryEvent {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The server's `Retry-After`, at most the pipeline's `retry.max_retry_after`: what a
    /// cluster-wide back-off may last.
    pub retry_after: Option<Duration>,
    /// The server asked for more than `retry.max_retry_after` (limit `max_retry_after`).
    pub clamped: bool,
    /// How long the fetcher waits before the next attempt.
    pub wait: Duration,
}

pub(crate) type RetryObserver = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// When and how long to retry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) max_attempts: u32,
    backoff: Backoff,
    retry_after_cap: Duration,
    /// The pipeline's `retry.max_retry_after`.
    max_retry_after: Duration,
}

impl RetryPolicy {
    pub(crate) fn new(retry: &Retry) -> Self {
        Self {
            max_attempts: retry.max_attempts.max(1),
            backoff: Backoff::new(retry.initial_backoff, retry.max_backoff),
            retry_after_cap: retry
                .max_backoff
                .saturating_mul(4)
                .min(MAX_RETRY_AFTER)
                .min(retry.max_retry_after),
            max_retry_after: retry.max_retry_after,
        }
    }

    /// The wait after failed attempt `attempt` (1-based): the server's `Retry-After` (capped
    /// at 4 × `max_backoff`, 5 minutes and `max_retry_after`) or else the jittered back-off.
    pub(crate) fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.retry_after_cap),
            None => self.backoff.delay(attempt.saturating_sub(1)),
        }
    }
}

/// Runs `attempt(n)` (n = 1, 2, ...) until it succeeds, fails with an error that is not
/// retriable, or `max_attempts` are used. Returns the value and the attempts used.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    url_shown: &str,
    observer: Option<&RetryObserver>,
    mut attempt: F,
) -> Result<(T, u32), FetchError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, FetchError>>,
{
    let mut n = 1;
    loop {
        match attempt(n).await {
            Ok(v) => return Ok((v, n)),
            Err(e) if e.is_retriable() && n < policy.max_attempts => {
                let asked = e.retry_after();
                let clamped = asked.is_some_and(|d| d > policy.max_retry_after);
                if clamped {
                    tracing::warn!(
                        url = %url_shown,
                        retry_after_s = asked.unwrap_or_default().as_secs(),
                        max_retry_after_s = policy.max_retry_after.as_secs(),
                        "limit max_retry_after: retry-after clamped; raise \
                         spec.source.http.retry.max_retry_after to obey longer ones"
                    );
                }
                let retry_after = asked.map(|d| d.min(policy.max_retry_after));
                let wait = policy.wait(n, retry_after);
                tracing::warn!(
                    attempt = n,
                    max_attempts = policy.max_attempts,
                    status = e.status().unwrap_or(0),
                    wait_ms = wait.as_millis() as u64,
                    url = %url_shown,
                    error = %e,
                    "retrying http request"
                );
                if let Some(observe) = observer {
                    observe(&RetryEvent {
                        attempt: n,
                        status: e.status(),
                        retry_after,
                        clamped,
                        wait,
                    });
                }
                tokio::time::sleep(wait).await;
                n += 1;
            }
            Err(e) => {
                if e.is_retriable() {
                    tracing::warn!(
                        attempts = n,
                        status = e.status().unwrap_or(0),
                        url = %url_shown,
                        error = %e,
                        "giving up http request"
                    );
                }
                return Err(e);
            }
        }
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date relative to `now` in any of the
/// three forms RFC 9110 §5.6.7 requires a recipient to accept (IMF-fixdate, e.g. `Sun, 06
/// Nov 1994 08:49:37 GMT`, and the obsolete RFC 850 and asctime forms), parsed by the
/// `httpdate` crate. `None` when unparseable.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        // `1e300` is a valid float but no Duration: saturate rather than panic.
        return (secs >= 0.0).then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
