//! Connector features of the HTTP source against a real cluster and the mock API: OAuth2
//! client credentials with tokens that expire during the run, and the per-host circuit
//! breaker against a dead upstream (bounded requests; the waiting shards shown by
//! `describe run` and the JSON API).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apitap_chaos::testbed::{wait, TestCluster};
use apitap_cluster_tests::api::Api;
use apitap_cluster_tests::expect::total_records;

fn oauth_pipeline(name: &str, db: &std::path::Path) -> String {
    format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: {name} }}
spec:
  source:
    http:
      url: "${{MOCK_API_URL}}/oauth/v1/page_number"
      records: $.data
      pagination: {{ kind: page_number, size: 10 }}
      auth:
        oauth2:
          token_url: "${{MOCK_API_URL}}/oauth/token"
          client_id: apitap-client
          client_secret: "${{CLIENT_SECRET}}"
          scopes: [read:items]
  rate_limit: {{ key: mock-oauth, requests_per_second: 25, burst: 1 }}
  sink:
    sqlite: {{ path: "{}", table: items }}
"#,
        db.display()
    )
}

/// 60 pages at 25 requests/s take over 2 s; tokens live 1 s, so the worker has to
/// refresh them during the run, before they expire; the only 401 is the one a revocation
/// causes, and it is answered with a new token.
#[tokio::test(flavor = "multi_thread")]
async fn oauth2_tokens_are_refreshed_before_expiry_and_after_a_401() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .records(600)
        .token_lifetime(Duration::from_secs(1))
        .secret("CLIENT_SECRET", "apitap-client-secret")
        .start()
        .await?;
    let db = cluster.out_path("oauth.db");
    let run = cluster.submit("oauth", &oauth_pipeline("oauth", &db))?;
    // Midway, the server forgets every token (a key rotation): the worker's next request
    // is refused once, renews its token and goes on. The revocation comes 300 ms into a
    // token's life, well before its refresh at 900 ms, with a request every 40 ms.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the run did not start");
        let log = cluster.mock.state().requests();
        let data = log
            .iter()
            .filter(|r| r.path == "/oauth/v1/page_number")
            .count();
        let last_token = log
            .iter()
            .rev()
            .find(|r| r.path == "/oauth/token")
            .map(|r| r.at_ms);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        if data >= 5 && last_token.is_some_and(|t| (300..500).contains(&now_ms.saturating_sub(t))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.mock.state().tokens().lock().unwrap().revoke_all();
    let info = cluster.wait_for_run(run, Duration::from_secs(120))?;
    assert_eq!(info["state"], "succeeded", "{info:#}");
    assert_eq!(total_records(&info), 600, "{info:#}");

    let log = cluster.mock.state().requests();
    let tokens: Vec<_> = log.iter().filter(|r| r.path == "/oauth/token").collect();
    let data: Vec<_> = log
        .iter()
        .filter(|r| r.path == "/oauth/v1/page_number")
        .collect();
    assert!(tokens.iter().all(|r| r.status == 200), "{tokens:?}");
    // One refusal, after the revocation, answered by a new token and the same request again.
    let refused: Vec<_> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == 401)
        .collect();
    assert_eq!(refused.len(), 1, "{log:#?}");
    let (i, first_401) = refused[0];
    assert_eq!(log[i + 1].path, "/oauth/token", "{log:#?}");
    assert_eq!(
        (log[i + 2].query.as_str(), log[i + 2].status),
        (first_401.query.as_str(), 200)
    );
    let span_ms = data.last().unwrap().at_ms - data.first().unwrap().at_ms;
    // One token per started second of the run, at least: refreshed, not reused past expiry.
    assert!(
        tokens.len() as u64 > span_ms / 1000,
        "{} token requests over {span_ms} ms of data requests",
        tokens.len()
    );
    // ...and not one per request.
    assert!(
        tokens.len() < data.len() / 3,
        "{} tokens for {} requests",
        tokens.len(),
        data.len()
    );
    println!(
        "oauth2: {} data requests over {span_ms} ms, {} token requests",
        data.len(),
        tokens.len()
    );
    Ok(())
}

/// A dead upstream: accepts connections and closes them at once; records when.
async fn dead_upstream() -> anyhow::Result<(String, Arc<Mutex<Vec<Instant>>>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            log.lock().unwrap().push(Instant::now());
            drop(sock);
        }
    });
    Ok((url, seen))
}

/// A pipeline `name` of one shard per value of `shards` against the dead upstream at `url`,
/// with the spec's `retry` and `circuit_breaker` (YAML flow mappings), tried once.
fn dead_pipeline(
    cluster: &TestCluster,
    name: &str,
    url: &str,
    retry: &str,
    breaker: &str,
    shards: &str,
) -> String {
    let db = cluster.out_path(format!("{name}.db"));
    format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: {name} }}
spec:
  source:
    http:
      url: "{url}/items?shard={{{{ shard.value }}}}"
      retry: {retry}
      circuit_breaker: {breaker}
  shards: {{ param: part, values: {shards} }}
  policy: {{ max_attempts: 1 }}
  sink:
    sqlite: {{ path: "{}", table: {name} }}
"#,
        db.display()
    )
}

/// Four shards on one worker against a dead API: the breaker opens after 3 failures, the
/// shards wait instead of retrying (10 attempts each would be 40 requests), one probe goes
/// through per cool-down, and the run fails saying that the breaker is open.
#[tokio::test(flavor = "multi_thread")]
async fn the_circuit_breaker_bounds_the_requests_to_a_dead_upstream() -> anyhow::Result<()> {
    let (url, seen) = dead_upstream().await?;
    let cluster = TestCluster::builder().slots(4).start().await?;
    let yaml = dead_pipeline(
        &cluster,
        "dead",
        &url,
        "{ max_attempts: 10, initial_backoff: 10ms, max_backoff: 50ms }",
        "{ failures: 3, open_for: 1s, max_wait: 3s }",
        "[a, b, c, d]",
    );
    let run = cluster.submit("dead", &yaml)?;
    let info = cluster.wait_for_run(run, Duration::from_secs(120))?;
    assert_eq!(info["state"], "failed", "{info:#}");
    // A shard that waited `max_wait` says why; the one that sent the probes ran out of
    // attempts with the upstream's own error.
    let host = url.trim_start_matches("http://");
    let says = format!("the circuit breaker for host {host} is open until");
    let shards = info["shards"].as_array().cloned().unwrap_or_default();
    assert!(
        shards
            .iter()
            .any(|s| s["error"].as_str().unwrap_or_default().contains(&says)),
        "{info:#}"
    );
    let times = seen.lock().unwrap().clone();
    let first = times[0];
    let span = times.last().unwrap().duration_since(first);
    // The first wave (3 failures open it; the other 3 shards may each have one request in
    // flight then), then at most one probe per started second of cool-down.
    let bound = 3 + 3 + span.as_secs() as usize + 1;
    assert!(
        times.len() <= bound,
        "{} requests in {span:?}: {times:?}",
        times.len()
    );
    assert!(times.len() < 40);
    // Half-open: probes come one cool-down apart.
    let late: Vec<_> = times
        .iter()
        .filter(|t| t.duration_since(first) > Duration::from_millis(900))
        .collect();
    assert!(!late.is_empty(), "no probe after the cool-down: {times:?}");
    for pair in late.windows(2) {
        assert!(
            pair[1].duration_since(*pair[0]) >= Duration::from_millis(950),
            "{times:?}"
        );
    }
    println!(
        "breaker: {} requests to the dead upstream over {span:?} (40 without it)",
        times.len()
    );
    Ok(())
}

/// Shards held back by the open breaker of a dead upstream: `describe run` (JSON and
/// table) and `/api/runs/{id}` name the host, the state and until when, from the holder's
/// heartbeat; once the run is cancelled, nothing waits any more.
#[tokio::test(flavor = "multi_thread")]
async fn describe_run_shows_the_shards_an_open_breaker_holds_back() -> anyhow::Result<()> {
    let (url, _seen) = dead_upstream().await?;
    let cluster = TestCluster::builder().slots(2).start().await?;
    let yaml = dead_pipeline(
        &cluster,
        "held",
        &url,
        "{ max_attempts: 5, initial_backoff: 10ms, max_backoff: 20ms }",
        "{ failures: 1, open_for: 1m, max_wait: 2m }",
        "[a, b]",
    );
    let run = cluster.submit("held", &yaml)?;
    let host = url.trim_start_matches("http://").to_string();
    let waiting = wait::until(
        "describe run to show a shard waiting on the breaker",
        Duration::from_secs(60),
        || {
            let info = cluster.run_info(run).ok()?;
            let shard = info["shards"]
                .as_array()?
                .iter()
                .find(|s| s["breaker"].is_object())?
                .clone();
            Some(shard)
        },
    )?;
    let b = &waiting["breaker"];
    assert_eq!(b["host"], host.as_str(), "{waiting:#}");
    assert_eq!(b["state"], "open", "{waiting:#}");
    let now = apitap_common::time::now_ms();
    let until = b["until_ms"].as_u64().unwrap_or(0);
    assert!(
        until > now && until <= now + 61_000,
        "open for the spec's minute: {waiting:#}"
    );
    let text = cluster.ctl_ok(&["describe", "run", &run.to_string()])?;
    assert!(
        text.contains(&format!("waits: the circuit breaker of {host} is open")),
        "{text}"
    );
    let admin = cluster.coordinators[0].admin.clone().expect("admin");
    let api = Api::new(&admin, None)
        .get(&format!("/api/runs/{run}"))
        .await?;
    let index = waiting["index"].as_u64().unwrap_or(0) as usize;
    assert_eq!(api["run"]["shards"][index]["breaker"], *b, "{api:#}");
    cluster.ctl_ok(&["run", "cancel", &run.to_string()])?;
    let info = cluster.wait_for_run(run, Duration::from_secs(30))?;
    assert!(
        info["shards"]
            .as_array()
            .is_some_and(|l| l.iter().all(|s| s["breaker"].is_null())),
        "{info:#}"
    );
    Ok(())
}

/// A full refresh with `conditional: true`: the second run sends the first run's `ETag`
/// back, gets `304 Not Modified` and loads nothing; after the data changed, the third run
/// loads it all again.
#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_full_refresh_loads_nothing() -> anyhow::Result<()> {
    let cluster = TestCluster::builder().records(300).start().await?;
    let db = cluster.out_path("full.db");
    let yaml = format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: full }}
spec:
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/all"
      conditional: true
  sink:
    sqlite: {{ path: "{}", table: full_refresh, mode: merge, primary_key: [id] }}
"#,
        db.display()
    );
    let again = |cluster: &TestCluster| -> anyhow::Result<serde_json::Value> {
        let run = cluster.ctl_json(&["run", "full"])?["run_id"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no run id"))?;
        cluster.wait_for_run(run, Duration::from_secs(60))
    };
    let first = cluster.submit("full", &yaml)?;
    let info = cluster.wait_for_run(first, Duration::from_secs(60))?;
    assert_eq!(
        (info["state"].as_str(), total_records(&info)),
        (Some("succeeded"), 300),
        "{info:#}"
    );

    let info = again(&cluster)?;
    assert_eq!(
        (info["state"].as_str(), total_records(&info)),
        (Some("succeeded"), 0),
        "{info:#}"
    );
    let statuses: Vec<u16> = cluster
        .mock
        .state()
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 304]);

    cluster.mock.state().dataset().grow(20);
    let info = again(&cluster)?;
    assert_eq!(
        (info["state"].as_str(), total_records(&info)),
        (Some("succeeded"), 320),
        "{info:#}"
    );
    let info = again(&cluster)?;
    assert_eq!(total_records(&info), 0, "{info:#}");
    let statuses: Vec<u16> = cluster
        .mock
        .state()
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 304, 200, 304]);
    Ok(())
}
