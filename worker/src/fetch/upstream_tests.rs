//! The upstream limits against real HTTP exchanges with the tiny server of [`super::tests`]:
//! body size, next links and redirects to other origins, the egress deny-list.

use apitap_common::checkpoint::Position;
use serde_json::json;

use super::tests::{fast_retry, fetcher, no_vars, source, Reply, Server};
use super::*;
use url::Url;

#[tokio::test]
async fn body_cap_comes_from_the_spec_and_counts_bodies_without_a_length() {
    // A body of `len` bytes, sent with and without a Content-Length.
    let body = json!([{"id": 1, "pad": "x".repeat(570)}]).to_string();
    let len = body.len() as u64;
    let with_length = body.clone();
    let server = Server::start(move |req, _| {
        if req.path() == "/length" {
            Reply::text(200, &with_length)
        } else {
            Reply::raw(&format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}"
            ))
        }
    })
    .await;
    let fetcher = |path: &str, max: u64| {
        fetcher(json!({"url": server.url(path), "retry": fast_retry(3), "max_body_bytes": max}))
            .unwrap()
    };
    for path in ["/length", "/stream"] {
        let err = fetcher(path, len - 1)
            .fetch(&Position::Start, 0, 0)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::BodyTooLarge { limit, .. } if limit == len - 1),
            "{err}"
        );
        assert_eq!(err.limit(), Some("max_body_bytes"));
        assert_eq!(err.class(), apitap_common::error::ErrorClass::User);
        let text = err.to_string();
        assert!(
            text.contains(&format!("max_body_bytes of {} bytes", len - 1))
                && text.contains("spec.source.http.max_body_bytes"),
            "{text}"
        );
        let page = fetcher(path, len)
            .fetch(&Position::Start, 0, 0)
            .await
            .unwrap();
        assert_eq!(page.bytes, len, "{path}");
    }
    // Not retried: a bigger body will not shrink.
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn default_body_cap_is_tens_of_mib() {
    let f = fetcher(json!({"url": "http://127.0.0.1:9/x"})).unwrap();
    assert_eq!(f.max_body_bytes, 32 * 1024 * 1024);
}

// ---------------------------------------------------------------------------------------
// Origins: next links and redirects
// ---------------------------------------------------------------------------------------

fn worker_client(egress: Egress) -> reqwest::Client {
    client::builder(std::sync::Arc::new(egress))
        .no_proxy()
        .build()
        .unwrap()
}

/// A source with every kind of credential: bearer, query api key, a custom header.
/// A fetcher of `src` through the worker's client (default egress deny-list).
fn fetcher_of(src: &HttpSource) -> Fetcher {
    Fetcher::new(worker_client(Egress::default()), src, &no_vars()).unwrap()
}

fn credentialed(url: String, pagination: serde_json::Value, cross_origin: bool) -> HttpSource {
    source(json!({
        "url": url,
        "headers": {"X-Tenant": "tenant-secret"},
        "auth": {"bearer": "bearer-secret"},
        "pagination": pagination,
        "retry": fast_retry(2),
        "follow": {"cross_origin": cross_origin},
    }))
}

fn api_key_source(url: String, cross_origin: bool) -> HttpSource {
    source(json!({
        "url": url,
        "auth": {"api_key": {"name": "api_key", "value": "key-secret", "in": "query"}},
        "records": "$.items",
        "retry": fast_retry(2),
        "follow": {"cross_origin": cross_origin},
    }))
}

/// No credential of [`credentialed`] or [`api_key_source`] in the request.
fn assert_no_credentials(req: &super::tests::Req) {
    let text = format!("{} {:?}", req.target, req.headers);
    for secret in ["tenant-secret", "bearer-secret", "key-secret"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(req.header("authorization").is_none(), "{text}");
}

async fn other_host() -> Server {
    Server::start(|_, _| Reply::json(200, json!({"items": [{"id": 2}], "next": null}))).await
}

/// Asserts that `err` refused to follow a `what` from one origin of `servers` to the other,
/// naming both; its message.
fn cross_origin(err: &FetchError, what: &str, servers: [&Server; 2]) -> String {
    let text = err.to_string();
    assert!(
        matches!(err, FetchError::CrossOrigin { what: w, .. } if *w == what),
        "{text}"
    );
    for s in servers {
        assert!(text.contains(&s.url("")), "{text}");
    }
    text
}

#[tokio::test]
async fn next_links_to_another_origin_are_refused_by_default() {
    let other = other_host().await;
    let next = other.url("/items?page=2");
    let server = Server::start(move |_, _| {
        Reply::json(200, json!({"items": [{"id": 1}], "next": next}))
            .header("Link", &format!("<{next}>; rel=\"next\""))
    })
    .await;
    for pagination in [
        json!({"kind": "next_url", "next_url_path": "$.next"}),
        json!({"kind": "link_header"}),
    ] {
        let f = fetcher_of(&credentialed(server.url("/items"), pagination, false));
        let f = Fetcher {
            records: apitap_common::jsonpath::JsonPath::parse("$.items").unwrap(),
            ..f
        };
        let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
        let text = cross_origin(&err, "next page link", [&server, &other]);
        assert_eq!(err.limit(), Some("follow.cross_origin"));
        assert!(text.contains("follow.cross_origin: true"), "{text}");
    }
    assert!(other.requests().is_empty());
}

#[tokio::test]
async fn next_links_to_another_origin_are_followed_without_credentials_when_allowed() {
    let other = other_host().await;
    let next = other.url("/items?page=2");
    let server = Server::start(move |_, _| {
        Reply::json(200, json!({"items": [{"id": 1}]}))
            .header("Link", &format!("<{next}>; rel=\"next\""))
    })
    .await;
    let mut src = credentialed(server.url("/items"), json!({"kind": "link_header"}), true);
    src.records = Some("$.items".into());
    src.auth = Some(
        serde_json::from_value(
            json!({"api_key": {"name": "api_key", "value": "key-secret", "in": "query"}}),
        )
        .unwrap(),
    );
    src.headers
        .insert("Authorization".into(), "Bearer bearer-secret".into());
    let f = fetcher_of(&src);
    let first = f.fetch(&Position::Start, 0, 0).await.unwrap();
    let second = f.fetch(&first.next, 1, 1).await.unwrap();
    assert_eq!(second.records, vec![json!({"id": 2})]);
    // The pipeline's origin got its credentials; the other origin none.
    let home = &server.requests()[0];
    assert_eq!(home.param("api_key").as_deref(), Some("key-secret"));
    assert_eq!(home.header("x-tenant").as_deref(), Some("tenant-secret"));
    let away = other.requests();
    assert_eq!(away.len(), 1);
    assert_eq!(away[0].param("page").as_deref(), Some("2"));
    assert_no_credentials(&away[0]);
}

#[tokio::test]
async fn redirects_to_another_origin_never_carry_the_api_key() {
    let other = other_host().await;
    let target = other.url("/landing");
    let server = Server::start(move |req, _| match req.path().as_str() {
        "/moved" => Reply::text(302, "").header("Location", "/items"),
        _ => Reply::text(302, "").header("Location", &target),
    })
    .await;

    // Refused by default, before the other host sees anything.
    let f = fetcher_of(&api_key_source(server.url("/moved"), false));
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    let text = cross_origin(&err, "redirect", [&server, &other]);
    assert!(!text.contains("key-secret"), "{text}");
    assert_eq!(err.class(), apitap_common::error::ErrorClass::User);
    assert!(other.requests().is_empty());
    // The same-origin hop (/moved → /items) was followed by the client.
    let home = server.requests();
    assert_eq!(home.len(), 2);
    assert_eq!(home[0].param("api_key").as_deref(), Some("key-secret"));
    assert_eq!(home[1].path(), "/items");

    // Allowed: followed, without the key.
    let f = fetcher_of(&api_key_source(server.url("/moved"), true));
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.status, 200);
    let away = other.requests();
    assert_eq!(away.len(), 1);
    assert_eq!(away[0].path(), "/landing");
    assert_no_credentials(&away[0]);
}

#[tokio::test]
async fn redirect_loops_stop_at_the_limit() {
    let server = Server::start(|req, i| {
        Reply::text(302, "").header("Location", &format!("{}?{i}", req.path()))
    })
    .await;
    let f = fetcher_of(&source(
        json!({"url": server.url("/loop"), "retry": fast_retry(3)}),
    ));
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert!(matches!(err, FetchError::Redirect { .. }), "{err}");
    assert_eq!(err.limit(), Some("max_redirects"), "{err}");
    // One request and MAX_REDIRECTS redirects; no retry.
    assert_eq!(server.requests().len(), MAX_REDIRECTS + 1);
}

// ---------------------------------------------------------------------------------------
// The egress deny-list
// ---------------------------------------------------------------------------------------

#[test]
fn deny_list_covers_link_local_and_metadata_but_not_loopback_by_default() {
    let e = Egress::default();
    for ip in [
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "100.100.100.200",
    ] {
        let denied = e.check_ip(ip.parse().unwrap()).unwrap_err();
        assert!(denied.to_string().contains("--egress-deny"), "{denied}");
    }
    for ip in ["127.0.0.1", "::1", "10.0.0.1", "93.184.216.34"] {
        assert!(e.check_ip(ip.parse().unwrap()).is_ok(), "{ip}");
    }
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://0xa9fea9fe/",
    ] {
        assert!(e.check_url(&Url::parse(url).unwrap()).is_err(), "{url}");
    }
    assert!(e
        .check_url(&Url::parse("http://localhost:8080/").unwrap())
        .is_ok());

    let strict = Egress::new(vec!["10.0.0.0/8".parse().unwrap()], true);
    for ip in ["127.0.0.1", "::1", "10.1.2.3", "0.0.0.0"] {
        assert!(strict.check_ip(ip.parse().unwrap()).is_err(), "{ip}");
    }
}

#[tokio::test]
async fn denied_urls_are_refused_before_any_request() {
    let server = Server::start(|_, _| Reply::json(200, json!([]))).await;
    let strict = || Egress::new(Vec::new(), true);
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            Egress::default(),
        ),
        (
            "http://metadata.google.internal/v1/".to_string(),
            Egress::default(),
        ),
        (server.url("/items"), strict()),
        // A name that resolves to a denied address: refused by the resolver.
        (
            server.url("/items").replace("127.0.0.1", "localhost"),
            strict(),
        ),
    ];
    for (url, egress) in cases {
        let egress = std::sync::Arc::new(egress);
        let f = Fetcher::new(
            client::builder(egress.clone()).no_proxy().build().unwrap(),
            &source(json!({"url": url, "retry": fast_retry(3)})),
            &no_vars(),
        )
        .unwrap()
        .with_egress(egress);
        let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
        assert!(matches!(err, FetchError::Egress { .. }), "{url}: {err}");
        assert_eq!(err.limit(), Some("egress_deny"));
        assert_eq!(err.class(), apitap_common::error::ErrorClass::User, "{err}");
    }
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn redirects_to_denied_addresses_are_refused() {
    let server = Server::start(|_, _| {
        Reply::text(302, "").header("Location", "http://169.254.169.254/latest/meta-data/")
    })
    .await;
    for cross_origin in [false, true] {
        let f = fetcher_of(&source(
            json!({"url": server.url("/x"), "follow": {"cross_origin": cross_origin}}),
        ));
        let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Egress { .. } | FetchError::CrossOrigin { .. }
            ),
            "{err}"
        );
        if cross_origin {
            assert_eq!(err.limit(), Some("egress_deny"), "{err}");
        }
    }
}
