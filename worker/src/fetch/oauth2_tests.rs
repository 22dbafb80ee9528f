//! OAuth2 client credentials against real servers: the mock API's token endpoint and
//! `/oauth/v1` endpoints (tokens that expire, revocation), and the tiny server of
//! [`super::tests`] for token endpoints that misbehave.

use std::time::{Duration, Instant};

use apitap_chaos::mock_api::{self, MockApiConfig, MockApiHandle};
use apitap_common::checkpoint::Position;
use apitap_common::error::ErrorClass;
use serde_json::json;

use super::tests::{client, fast_retry, no_vars, source, Reply, Server};
use super::*;

const SECRET: &str = "apitap-client-secret";

async fn mock(lifetime: Duration) -> MockApiHandle {
    let config = MockApiConfig::with_records(50).with_token_lifetime(lifetime);
    mock_api::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn oauth_source(url: &str, token_url: &str, secret: &str) -> HttpSource {
    source(json!({
        "url": url,
        "records": "$.data",
        "retry": fast_retry(3),
        "pagination": {"kind": "page_number", "size": 10},
        "auth": {"oauth2": {
            "token_url": token_url,
            "client_id": "apitap-client",
            "client_secret": secret,
            "scopes": ["read:items"],
        }},
    }))
}

/// A fetcher of the mock's OAuth-protected `endpoint` (`page_number`, `all`, …), with its
/// token endpoint and the client secret `secret`.
fn oauth_fetcher(api: &MockApiHandle, endpoint: &str, secret: &str) -> Fetcher {
    let url = format!("{}/oauth/v1/{endpoint}", api.url());
    let token_url = format!("{}/oauth/token", api.url());
    Fetcher::new(
        client(),
        &oauth_source(&url, &token_url, secret),
        &no_vars(),
    )
    .unwrap()
}

/// A fetcher of the mock's OAuth-protected page-number endpoint with the right secret.
fn paged_fetcher(api: &MockApiHandle) -> Fetcher {
    oauth_fetcher(api, "page_number", SECRET)
}

/// (token requests, data requests, data requests answered 401) in the mock's log.
fn counts(api: &MockApiHandle) -> (usize, usize, usize) {
    let log = api.state().requests();
    let tokens = log.iter().filter(|r| r.path == "/oauth/token").count();
    let data: Vec<_> = log
        .iter()
        .filter(|r| r.path.starts_with("/oauth/v1"))
        .collect();
    let refused = data.iter().filter(|r| r.status == 401).count();
    (tokens, data.len(), refused)
}

#[tokio::test]
async fn a_token_is_reused_then_refreshed_before_it_expires() {
    let api = mock(Duration::from_secs(1)).await;
    let f = paged_fetcher(&api);
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.records.len(), 10);
    f.fetch(&page.next, 1, 10).await.unwrap();
    assert_eq!(counts(&api), (1, 2, 0), "one token for both pages");
    // The token lives 1s and is refreshed 100ms before: keep fetching until a second token
    // was asked for, and never send an expired one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counts(&api).0 < 2 {
        assert!(Instant::now() < deadline, "no refresh: {:?}", counts(&api));
        f.fetch(&page.next, 1, 10).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counts(&api).2, 0, "an expired token was sent");
    api.stop().await;
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_repeats_the_request() {
    let api = mock(Duration::from_secs(3600)).await;
    let f = paged_fetcher(&api);
    f.fetch(&Position::Start, 0, 0).await.unwrap();
    // The server forgets every token (a key rotation): the cached one is refused.
    api.state().tokens().lock().unwrap().revoke_all();
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.attempts, 1, "the renewal is not a retry");
    assert_eq!(counts(&api), (2, 3, 1));
    api.stop().await;
}

#[tokio::test]
async fn a_second_401_is_an_auth_error_not_a_loop() {
    // A source that refuses every token the token endpoint issues.
    let server = Server::start(|req, n| match req.path().as_str() {
        "/token" => Reply::json(
            200,
            json!({"access_token": format!("t{n}"), "expires_in": 600}),
        ),
        _ => Reply::json(401, json!({"error": "invalid_token"})),
    })
    .await;
    let mut s = oauth_source(&server.url("/data"), &server.url("/token"), SECRET);
    s.pagination = Default::default();
    let f = Fetcher::new(client(), &s, &no_vars()).unwrap();
    let e = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(e.class(), ErrorClass::User);
    assert!(!e.is_retriable());
    assert!(
        e.to_string()
            .contains("refused a freshly issued OAuth2 token too"),
        "{e}"
    );
    let paths: Vec<_> = server.requests().iter().map(|r| r.path()).collect();
    assert_eq!(paths, ["/token", "/data", "/token", "/data"]);
}

#[tokio::test]
async fn wrong_client_credentials_fail_at_once_without_the_secret() {
    let api = mock(Duration::from_secs(3600)).await;
    let wrong = "not-the-secret-value";
    let f = oauth_fetcher(&api, "all", wrong);
    let e = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(e.class(), ErrorClass::User, "{text}");
    assert!(
        text.contains("HTTP 401: invalid_client") && text.contains("/oauth/token"),
        "{text}"
    );
    assert!(!text.contains(wrong), "{text}");
    assert_eq!(counts(&api), (1, 0, 0), "not retried, no data request");
    api.stop().await;
}

#[tokio::test]
async fn shards_of_a_pipeline_share_one_token_per_worker() {
    let api = mock(Duration::from_secs(3600)).await;
    let cache = TokenCache::default();
    let s = oauth_source(
        &format!("{}/oauth/v1/page_number", api.url()),
        &format!("{}/oauth/token", api.url()),
        SECRET,
    );
    let fetcher = |pipeline: &str| {
        Fetcher::new(client(), &s, &no_vars())
            .unwrap()
            .with_token_cache(&cache, pipeline)
    };
    for f in [
        fetcher("default/a"),
        fetcher("default/a"),
        fetcher("default/b"),
    ] {
        f.fetch(&Position::Start, 0, 0).await.unwrap();
    }
    assert_eq!(counts(&api).0, 2, "one token for pipeline a, one for b");
    api.stop().await;
}

/// A token endpoint answering `reply`, and a fetcher of `/data` on the same server.
async fn token_server(
    reply: impl Fn() -> Reply + Send + Sync + 'static,
    max: Option<u64>,
) -> (Server, Fetcher) {
    let server = Server::start(move |req, _| {
        if req.path() == "/token" {
            reply()
        } else {
            Reply::json(200, json!([{"id": 1}]))
        }
    })
    .await;
    let mut s = oauth_source(&server.url("/data"), &server.url("/token"), SECRET);
    s.records = None;
    s.pagination = Default::default();
    if let Some(o) = s.auth.as_mut().and_then(|a| a.oauth2.as_mut()) {
        o.max_response_bytes = max;
    }
    let f = Fetcher::new(client(), &s, &no_vars()).unwrap();
    (server, f)
}

#[tokio::test]
async fn malformed_and_oversized_token_responses_are_clear_errors() {
    let (_s, f) = token_server(|| Reply::text(200, "<html>login</html>"), None).await;
    let e = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("not a usable OAuth2 token: not JSON"),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::User);

    let (_s, f) = token_server(|| Reply::json(200, json!({"token": "x"})), None).await;
    let e = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert!(e.to_string().contains("no `access_token`"), "{e}");

    let big = json!({"access_token": "a".repeat(2000), "expires_in": 60});
    let (_s, f) = token_server(move || Reply::json(200, big.clone()), Some(1000)).await;
    let e = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert_eq!(e.limit(), Some("oauth2.max_response_bytes"), "{e}");
    assert!(
        e.to_string().contains("max_response_bytes of 1000 bytes"),
        "{e}"
    );

    // 503 is retried (3 attempts), then a transient error.
    let (s, f) = token_server(
        || Reply::json(503, json!({"error": "temporarily_unavailable"})),
        None,
    )
    .await;
    let e = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert_eq!(
        s.requests().iter().filter(|r| r.path() == "/token").count(),
        3
    );
}

#[tokio::test]
async fn the_token_goes_to_the_source_only_and_never_into_errors() {
    let token = "tok-very-secret-123";
    let server = Server::start(move |req, _| match req.path().as_str() {
        "/token" => Reply::json(
            200,
            json!({"access_token": token, "token_type": "bearer", "expires_in": 600}),
        ),
        // An upstream that echoes the credentials it got.
        _ => Reply::json(
            400,
            json!({"error": "bad", "got": req.header("authorization")}),
        ),
    })
    .await;
    let mut s = oauth_source(&server.url("/data"), &server.url("/token"), SECRET);
    s.pagination = Default::default();
    let f = Fetcher::new(client(), &s, &no_vars()).unwrap();
    let e = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("HTTP 400") && !text.contains(token), "{text}");
    let reqs = server.requests();
    let token_req = reqs.iter().find(|r| r.path() == "/token").unwrap();
    // client_secret_basic: the secret travels in the token request's Authorization only.
    assert!(token_req
        .header("authorization")
        .unwrap()
        .starts_with("Basic "));
    let data = reqs.iter().find(|r| r.path() == "/data").unwrap();
    assert_eq!(
        data.header("authorization").as_deref(),
        Some(&*format!("Bearer {token}"))
    );
}

#[tokio::test]
async fn the_token_url_obeys_the_egress_rules_and_no_cross_origin_redirect() {
    let s = oauth_source(
        "http://127.0.0.1:9/data",
        "http://169.254.169.254/token",
        SECRET,
    );
    let f = Fetcher::new(client(), &s, &no_vars()).unwrap();
    let e = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert_eq!(e.limit(), Some("egress_deny"), "{e}");

    let elsewhere = Server::start(|_, _| Reply::json(200, json!({"access_token": "x"}))).await;
    let target = elsewhere.url("/token");
    let server = Server::start(move |_, _| Reply::text(307, "").header("Location", &target)).await;
    let s = oauth_source(&server.url("/data"), &server.url("/token"), SECRET);
    let worker_client = client::builder(Default::default())
        .no_proxy()
        .build()
        .unwrap();
    let e = Fetcher::new(worker_client, &s, &no_vars())
        .unwrap()
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("redirects to another origin"), "{e}");
    assert!(
        elsewhere.requests().is_empty(),
        "the credentials went to another origin"
    );
}

#[test]
fn token_body_is_form_encoded_with_scopes_and_audience() {
    let o: apitap_common::spec::OAuth2Auth = serde_json::from_value(json!({
        "token_url": "https://auth.test/token", "client_id": "c", "client_secret": "s3cret",
        "scopes": ["a", "b:c"], "audience": "https://api.test", "params": {"resource": "r"},
        "client_auth": "post",
    }))
    .unwrap();
    let o = oauth2::OAuth2::new(&o, Duration::from_secs(1), &redact::Redactor::default()).unwrap();
    assert_eq!(o.shown, "https://auth.test/token");
    let form: Vec<(&str, &str)> = o
        .form
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        form,
        [
            ("grant_type", "client_credentials"),
            ("scope", "a b:c"),
            ("audience", "https://api.test"),
            ("resource", "r"),
            ("client_id", "c"),
            ("client_secret", "s3cret"),
        ]
    );
}
