//! Circuit breakers per upstream host, shared by every shard of a worker process.
//!
//! Closed → open after `failures` consecutive failed requests to a host (no response, a
//! timeout, a 5xx; a 4xx or any other answer counts as the host being up). Open, the host
//! gets no request for `open_for`; then one request goes through as a probe (half-open):
//! its success closes the breaker, its failure opens it again. Shards that find it open
//! wait (see [`Fetcher`](super::Fetcher)) instead of spending their retries, so a dead API
//! sees a bounded number of requests however many shards call it.
//!
//! The thresholds are the calling pipeline's `circuit_breaker` settings: the request that
//! opens the breaker sets its cool-down. The transitions are pure ([`Host::admit`],
//! [`Host::record`]) and tested without a clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apitap_common::metrics::CounterVec;
use apitap_common::spec::CircuitBreaker;
use tokio::sync::watch;
use url::Url;

use super::breaker_wait::{unix_ms, ClearOnDrop, WaitSlot, Waiting};
use super::error::FetchError;

/// Hosts tracked; closed breakers without failures are dropped beyond this.
const MAX_HOSTS: usize = 1024;

/// Hosts with their own series in the rejections metric.
const MAX_METRIC_HOSTS: usize = 64;

/// How often a waiting shard looks again while a probe is in flight.
const PROBE_POLL: Duration = Duration::from_millis(100);

/// A host's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl State {
    /// 0 closed, 1 open, 2 half-open: the value of the state metric.
    pub fn code(&self) -> i64 {
        match self {
            State::Closed { .. } => 0,
            State::Open { .. } => 1,
            State::HalfOpen { .. } => 2,
        }
    }
}

/// What a request may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send it; `probe` when it is the half-open breaker's one probe.
    Go { probe: bool },
    /// Do not send it before `until`.
    Wait { until: Instant },
}

/// What a request's result says about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Up,
    Down,
    /// Says nothing (refused before sending, throttled with 429).
    Neither,
}

impl Verdict {
    pub(crate) fn of(result: &Result<u16, &FetchError>) -> Self {
        match result {
            Ok(status) if *status >= 500 => Verdict::Down,
            Ok(429) => Verdict::Neither,
            Ok(_) => Verdict::Up,
            Err(FetchError::Transport { .. }) => Verdict::Down,
            Err(_) => Verdict::Neither,
        }
    }
}

/// One host's breaker with its transitions.
#[derive(Debug, Clone, Copy)]
struct Host {
    state: State,
}

impl Host {
    fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            State::Closed { .. } => Admit::Go { probe: false },
            State::Open { until } if now < until => Admit::Wait { until },
            State::Open { .. } | State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Admit::Go { probe: true }
            }
            State::HalfOpen { probing: true } => Admit::Wait {
                until: now + PROBE_POLL,
            },
        }
    }

    fn record(&mut self, probe: bool, verdict: Verdict, cfg: &CircuitBreaker, now: Instant) {
        self.state = match (self.state, verdict) {
            (State::HalfOpen { .. }, Verdict::Up) if probe => State::Closed { failures: 0 },
            (State::HalfOpen { .. }, Verdict::Down) if probe => State::Open {
                until: now + cfg.open_for,
            },
            // A probe that says nothing lets the next request probe.
            (State::HalfOpen { .. }, Verdict::Neither) if probe => {
                State::HalfOpen { probing: false }
            }
            (State::Closed { .. }, Verdict::Up) => State::Closed { failures: 0 },
            (State::Closed { failures }, Verdict::Down) => {
                let failures = failures.saturating_add(1);
                if failures >= cfg.failures {
                    State::Open {
                        until: now + cfg.open_for,
                    }
                } else {
                    State::Closed { failures }
                }
            }
            // Requests sent before the breaker opened come back late: ignored.
            (other, _) => other,
        };
    }
}

/// The breakers of one worker process, by host (`host:port`).
#[derive(Debug)]
pub struct Breakers {
    hosts: Mutex<HashMap<String, Host>>,
    /// Requests held back by an open (or probing) breaker, by host.
    pub rejected: CounterVec,
}

impl Default for Breakers {
    fn default() -> Self {
        Self {
            hosts: Mutex::default(),
            rejected: CounterVec::new(&["host"], MAX_METRIC_HOSTS),
        }
    }
}

impl Breakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Host>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn admit(&self, host: &str, now: Instant) -> Admit {
        let mut hosts = self.lock();
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(host) {
            hosts.retain(|_, h| h.state != State::Closed { failures: 0 });
        }
        let admit = hosts
            .entry(host.to_string())
            .or_insert(Host {
                state: State::Closed { failures: 0 },
            })
            .admit(now);
        drop(hosts);
        if matches!(admit, Admit::Wait { .. }) {
            self.rejected.inc(&[host]);
        }
        admit
    }

    pub(crate) fn record(
        &self,
        host: &str,
        probe: bool,
        verdict: Verdict,
        cfg: &CircuitBreaker,
        now: Instant,
    ) {
        let mut hosts = self.lock();
        if let Some(h) = hosts.get_mut(host) {
            let before = h.state;
            h.record(probe, verdict, cfg, now);
            if before.code() != h.state.code() {
                tracing::warn!(host = %host, from = before.code(), to = h.state.code(), "circuit breaker changed state (0 closed, 1 open, 2 half-open)");
            }
        }
    }

    /// The state of `host`'s breaker (closed if unknown).
    pub fn state_of(&self, host: &str) -> State {
        self.lock()
            .get(host)
            .map_or(State::Closed { failures: 0 }, |h| h.state)
    }

    /// Every host's state, for the metrics.
    pub fn states(&self) -> Vec<(String, State)> {
        let mut out: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, h)| (k.clone(), h.state))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The breaker key of `url`: `host:port`.
pub(crate) fn key(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Waits until the breaker of `url`'s host lets a request through: at most
/// `cfg.max_wait`, and not after `stop` turns true (a drain).
pub(crate) async fn pass(
    breakers: &Arc<Breakers>,
    cfg: &CircuitBreaker,
    url: &Url,
    shown: &str,
    mut stop: Option<watch::Receiver<bool>>,
    slot: Option<&WaitSlot>,
) -> Result<Ticket, FetchError> {
    let host = key(url);
    let deadline = Instant::now() + cfg.max_wait;
    let mut waiting = false;
    let _clear = ClearOnDrop(slot);
    loop {
        let until = match breakers.admit(&host, Instant::now()) {
            Admit::Go { probe } => {
                return Ok(Ticket {
                    breakers: breakers.clone(),
                    host,
                    probe,
                    cfg: cfg.clone(),
                    done: false,
                })
            }
            Admit::Wait { until } => until,
        };
        let open = |why: String| FetchError::CircuitOpen {
            url: shown.to_string(),
            host: host.clone(),
            until: until_utc(until),
            why,
        };
        if Instant::now() >= deadline {
            tracing::warn!(url = %shown, host = %host, "limit circuit_breaker.max_wait: gave up waiting for an open circuit breaker");
            return Err(open(format!(
                "the shard waited {}s for it (circuit_breaker.max_wait) and gives its lease up; \
                 the run retries the shard under spec.policy",
                cfg.max_wait.as_secs()
            )));
        }
        if !waiting {
            waiting = true;
            tracing::info!(url = %shown, host = %host, until = %until_utc(until), "circuit breaker open: waiting");
        }
        if let Some(slot) = slot {
            let (state, until_ms) = match breakers.state_of(&host) {
                State::HalfOpen { .. } => ("half-open", 0),
                _ => ("open", unix_ms(until)),
            };
            slot.set(Waiting {
                host: host.clone(),
                state,
                until_ms,
            });
        }
        let wake = tokio::time::Instant::from_std(until.min(deadline));
        let mut closed = false;
        match stop.as_mut() {
            Some(rx) => tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                r = rx.wait_for(|s| *s) => match r {
                    Ok(_) => return Err(open("the shard was asked to stop while it waited".into())),
                    // Nobody can ask any more: wait on the clock alone.
                    Err(_) => closed = true,
                },
            },
            None => tokio::time::sleep_until(wake).await,
        }
        if closed {
            stop = None;
        }
    }
}

/// `at` as an RFC 3339 UTC time (to the second), for messages.
fn until_utc(at: Instant) -> String {
    let wall = std::time::SystemTime::now() + at.saturating_duration_since(Instant::now());
    humantime::format_rfc3339_seconds(wall).to_string()
}

/// A request admitted by a breaker; recording its verdict is due. Dropped unrecorded (its
/// future cancelled), it frees the probe slot so the breaker cannot stay half-open.
pub(crate) struct Ticket {
    pub(crate) breakers: Arc<Breakers>,
    pub(crate) host: String,
    pub(crate) probe: bool,
    pub(crate) cfg: CircuitBreaker,
    pub(crate) done: bool,
}

impl Ticket {
    pub(crate) fn record(mut self, verdict: Verdict) {
        self.done = true;
        self.breakers
            .record(&self.host, self.probe, verdict, &self.cfg, Instant::now());
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            self.breakers.record(
                &self.host,
                self.probe,
                Verdict::Neither,
                &self.cfg,
                Instant::now(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(failures: u32, open_for_ms: u64) -> CircuitBreaker {
        CircuitBreaker {
            failures,
            open_for: Duration::from_millis(open_for_ms),
            ..CircuitBreaker::default()
        }
    }

    #[test]
    fn opens_after_consecutive_failures_probes_once_then_closes_or_reopens() {
        let (b, c, t0) = (Breakers::default(), cfg(3, 1000), Instant::now());
        let h = "api.test:443";
        for _ in 0..2 {
            assert_eq!(b.admit(h, t0), Admit::Go { probe: false });
            b.record(h, false, Verdict::Down, &c, t0);
        }
        // A success in between resets the count; a 4xx is a success.
        b.record(h, false, Verdict::Up, &c, t0);
        for _ in 0..3 {
            b.record(h, false, Verdict::Down, &c, t0);
        }
        let until = t0 + Duration::from_secs(1);
        assert_eq!(b.states()[0].1, State::Open { until });
        assert_eq!(b.admit(h, t0), Admit::Wait { until });
        // Late answers of requests sent before it opened change nothing.
        b.record(h, false, Verdict::Up, &c, t0);
        assert_eq!(b.states()[0].1, State::Open { until });
        // After the cool-down: one probe, the others wait.
        assert_eq!(b.admit(h, until), Admit::Go { probe: true });
        assert!(matches!(b.admit(h, until), Admit::Wait { .. }));
        b.record(h, true, Verdict::Down, &c, until);
        let again = until + Duration::from_secs(1);
        assert_eq!(b.states()[0].1, State::Open { until: again });
        assert_eq!(b.admit(h, again), Admit::Go { probe: true });
        b.record(h, true, Verdict::Up, &c, again);
        assert_eq!(b.states()[0].1, State::Closed { failures: 0 });
        assert_eq!(b.rejected.get(&[h]), 2);
    }

    #[test]
    fn a_cancelled_probe_frees_the_slot_and_hosts_are_separate() {
        let b = Arc::new(Breakers::default());
        let (c, t0) = (cfg(1, 100), Instant::now());
        b.record("a:80", false, Verdict::Down, &c, t0);
        assert_eq!(
            b.admit("a:80", t0),
            Admit::Go { probe: false },
            "unknown host until admitted"
        );
        b.record("a:80", false, Verdict::Down, &c, t0);
        assert_eq!(b.admit("b:80", t0), Admit::Go { probe: false });
        let later = t0 + Duration::from_millis(100);
        assert_eq!(b.admit("a:80", later), Admit::Go { probe: true });
        drop(Ticket {
            breakers: b.clone(),
            host: "a:80".into(),
            probe: true,
            cfg: c.clone(),
            done: false,
        });
        assert_eq!(
            b.admit("a:80", later),
            Admit::Go { probe: true },
            "slot freed"
        );
    }

    #[test]
    fn verdicts() {
        let t = FetchError::Transport {
            url: "u".into(),
            message: "refused".into(),
            timeout: false,
        };
        let egress = FetchError::Egress {
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(Verdict::of(&Ok(200)), Verdict::Up);
        assert_eq!(Verdict::of(&Ok(404)), Verdict::Up);
        assert_eq!(Verdict::of(&Ok(429)), Verdict::Neither);
        assert_eq!(Verdict::of(&Ok(503)), Verdict::Down);
        assert_eq!(Verdict::of(&Err(&t)), Verdict::Down);
        assert_eq!(Verdict::of(&Err(&egress)), Verdict::Neither);
    }
}
