//! The circuit breaker with real sockets: a dead upstream (a listener that accepts and
//! closes) sees a bounded number of requests from several shards, and a half-open probe
//! that succeeds closes the breaker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apitap_common::checkpoint::Position;
use apitap_common::error::ErrorClass;
use serde_json::json;

use super::breaker::State;
use super::tests::{client, no_vars, source, Reply, Server};
use super::*;

fn fetcher(
    url: &str,
    attempts: u32,
    breaker: serde_json::Value,
    shared: &Arc<Breakers>,
) -> Fetcher {
    let s = source(json!({
        "url": url,
        "retry": {"max_attempts": attempts, "initial_backoff": "5ms", "max_backoff": "10ms"},
        "circuit_breaker": breaker,
    }));
    Fetcher::new(client(), &s, &no_vars())
        .unwrap()
        .with_breakers(shared.clone())
}

#[tokio::test]
async fn a_dead_upstream_sees_a_bounded_number_of_requests_from_all_shards() {
    let dead = Server::start(|_, _| Reply::raw("")).await;
    let shared = Arc::new(Breakers::default());
    let cfg = json!({"failures": 3, "open_for": "200ms", "max_wait": "250ms"});
    let shards: Vec<Fetcher> = (0..4)
        .map(|_| fetcher(&dead.url("/items"), 6, cfg.clone(), &shared))
        .collect();
    let started = Instant::now();
    let results =
        futures::future::join_all(shards.iter().map(|f| f.fetch(&Position::Start, 0, 0))).await;
    let elapsed = started.elapsed();
    let requests = dead.requests().len() as u128;
    // Without the breaker: 4 shards × 6 attempts = 24 requests. With it: the first wave,
    // then one probe per cool-down.
    let bound = 3 + 3 + elapsed.as_millis() / 200 + 1;
    assert!(
        requests <= bound,
        "{requests} requests in {elapsed:?}, bound {bound}"
    );
    assert!(requests < 24);
    let open: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| matches!(e, FetchError::CircuitOpen { .. }))
        .map(|e| e.to_string())
        .collect();
    assert!(!open.is_empty(), "{results:?}");
    let host = format!(
        "127.0.0.1:{}",
        Url::parse(&dead.url("/")).unwrap().port().unwrap()
    );
    assert!(
        open[0].contains(&format!(
            "the circuit breaker for host {host} is open until "
        )),
        "{}",
        open[0]
    );
    assert!(open[0].contains("circuit_breaker.max_wait"), "{}", open[0]);
    for r in &results {
        assert_eq!(r.as_ref().unwrap_err().class(), ErrorClass::Transient);
    }
    assert!(shared.rejected.get(&[&host]) > 0);
    assert!(matches!(
        shared.states()[0].1,
        State::Open { .. } | State::HalfOpen { .. }
    ));
}

#[tokio::test]
async fn after_the_cool_down_one_probe_goes_through_and_its_success_closes_it() {
    // Down for the first two requests, then up.
    let flaky = Server::start(|_, n| {
        if n < 2 {
            Reply::raw("")
        } else {
            Reply::json(200, json!([{"id": 1}]))
        }
    })
    .await;
    let shared = Arc::new(Breakers::default());
    let f = fetcher(
        &flaky.url("/items"),
        5,
        json!({"failures": 2, "open_for": "300ms"}),
        &shared,
    );
    let started = Instant::now();
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.attempts, 3);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the probe waited for the cool-down"
    );
    assert_eq!(flaky.requests().len(), 3);
    assert_eq!(shared.states()[0].1, State::Closed { failures: 0 });
}

#[tokio::test]
async fn a_stop_ends_the_wait_at_once_and_4xx_keeps_it_closed() {
    let dead = Server::start(|req, _| {
        if req.path() == "/missing" {
            Reply::json(404, json!({}))
        } else {
            Reply::raw("")
        }
    })
    .await;
    let shared = Arc::new(Breakers::default());
    let cfg = json!({"failures": 1, "open_for": "1h", "max_wait": "1h"});
    for _ in 0..3 {
        let e = fetcher(&dead.url("/missing"), 1, cfg.clone(), &shared)
            .fetch(&Position::Start, 0, 0)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(404));
    }
    assert_eq!(shared.states()[0].1, State::Closed { failures: 0 });
    fetcher(&dead.url("/gone"), 1, cfg.clone(), &shared)
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap_err();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let slot = Arc::new(breaker_wait::WaitSlot::default());
    let waiting = fetcher(&dead.url("/gone"), 1, cfg, &shared)
        .with_stop(rx)
        .with_wait_slot(slot.clone());
    let task = tokio::spawn(async move { waiting.fetch(&Position::Start, 0, 0).await });
    // The wait shows in the slot the heartbeat reads: host, state and until when.
    let deadline = Instant::now() + Duration::from_secs(5);
    let shown = loop {
        if let Some(w) = slot.get() {
            break w;
        }
        assert!(
            Instant::now() < deadline,
            "the wait never showed in the slot"
        );
        tokio::task::yield_now().await;
    };
    let port = Url::parse(&dead.url("/")).unwrap().port().unwrap();
    assert_eq!(shown.host, format!("127.0.0.1:{port}"));
    assert_eq!(shown.state, "open");
    let in_59_minutes = apitap_common::time::now_ms() + 59 * 60_000;
    assert!(shown.until_ms > in_59_minutes, "{shown:?}");
    tx.send_replace(true);
    let e = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        e.to_string().contains("asked to stop while it waited"),
        "{e}"
    );
    assert_eq!(slot.get(), None, "a wait that ended leaves the slot empty");
}

#[tokio::test]
async fn a_stop_signal_that_is_gone_does_not_end_the_wait() {
    let dead = Server::start(|_, _| Reply::raw("")).await;
    let shared = Arc::new(Breakers::default());
    let cfg = json!({"failures": 1, "open_for": "100ms", "max_wait": "1s"});
    fetcher(&dead.url("/x"), 1, cfg.clone(), &shared)
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap_err();
    let (tx, rx) = tokio::sync::watch::channel(false);
    drop(tx);
    let started = Instant::now();
    let e = fetcher(&dead.url("/x"), 1, cfg, &shared)
        .with_stop(rx)
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("asked to stop"), "{e}");
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "waited for the cool-down"
    );
    assert_eq!(dead.requests().len(), 2, "the probe went through");
}
