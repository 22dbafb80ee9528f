//! The upstream limits against real HTTP exchanges with the tiny server of [`super::tests`]:
//! body size, next links and redirects to other origins, the egress deny-list.

use apitap_common::checkpoint::Position;
use serde_json::json;

use super::tests::{client, fast_retry, no_vars, source, Reply, Server};
use super::*;

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
        Fetcher::new(
            client(),
            &source(
                json!({"url": server.url(path), "retry": fast_retry(3), "max_body_bytes": max}),
            ),
            &no_vars(),
        )
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
    let f = Fetcher::new(
        client(),
        &source(json!({"url": "http://127.0.0.1:9/x"})),
        &no_vars(),
    )
    .unwrap();
    assert_eq!(f.max_body_bytes, 32 * 1024 * 1024);
}
