//! Tests of the mock API: every paginator walked to the end, faults, auth,
//! growth, id windows, and one real-socket round trip through [`start`].

use std::collections::BTreeSet;

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceResponse},
    http::{header, StatusCode},
    test::{self, TestRequest},
    web::Bytes,
    App,
};
use serde_json::{json, Value};

use super::*;

/// Host header sent by the in-process tests; next links must use it.
const HOST: &str = "mock.test";

/// What a test request got back.
struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: header::HeaderName) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

async fn send<S, R, B>(app: &S, req: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let headers = res.headers().clone();
    Reply {
        status,
        headers,
        body: test::read_body(res).await,
    }
}

fn get(uri: &str) -> TestRequest {
    TestRequest::get()
        .uri(uri)
        .insert_header((header::HOST, HOST))
}

fn post_json(uri: &str, body: Value) -> TestRequest {
    TestRequest::post().uri(uri).set_json(body)
}

/// Turns an absolute next link into the path+query a TestRequest takes.
fn relative(link: &str) -> String {
    let prefix = format!("http://{HOST}");
    link.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{link} does not start with {prefix}"))
        .to_owned()
}

fn ids(records: &Value) -> Vec<u64> {
    records
        .as_array()
        .expect("array of records")
        .iter()
        .map(|r| r["id"].as_u64().expect("numeric id"))
        .collect()
}

/// Asserts that `seen` holds exactly `expected`, each once, in order.
fn assert_exactly_once(seen: &[u64], expected: std::ops::RangeInclusive<u64>) {
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "duplicate ids in {seen:?}");
    assert_eq!(seen, expected.collect::<Vec<_>>().as_slice());
}

/// The JSON body of a GET of `$uri` (a macro, as `app!`: the service's type has no name to
/// write).
macro_rules! get_json {
    ($app:expr, $uri:expr) => {
        send($app, get($uri).to_request()).await.json()
    };
}

/// Follows the `next` links from `$uri` to the end, each of which must contain `$keeps`;
/// the ids of every page. (A macro, as `app!`: the service's type has no name to write.)
macro_rules! walk_next_links {
    ($app:expr, $uri:expr, $keeps:expr) => {{
        let mut seen = Vec::new();
        let mut uri: String = $uri.into();
        loop {
            let body = get_json!($app, &uri);
            seen.extend(ids(&body["data"]));
            match body["next"].as_str() {
                Some(next) => {
                    assert!(next.contains($keeps), "{next}");
                    uri = relative(next);
                }
                None => break seen,
            }
        }
    }};
}

macro_rules! app {
    ($config:expr) => {{
        let state = $config.into_state();
        let app = test::init_service(App::new().configure(configure(state.clone()))).await;
        (app, state)
    }};
}

const N: u64 = 257;

#[actix_web::test]
async fn walks_limit_offset_to_the_end() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    let (mut seen, mut offset) = (Vec::new(), 0);
    loop {
        let r = send(
            &app,
            get(&format!("/v1/limit_offset?offset={offset}&limit=50")).to_request(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let body = r.json();
        assert_eq!(body["total"], json!(N));
        let page = ids(&body["data"]);
        if page.is_empty() {
            break;
        }
        offset += page.len() as u64;
        seen.extend(page);
    }
    assert_exactly_once(&seen, 1..=N);
}

#[actix_web::test]
async fn walks_page_number_to_the_end() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    let mut seen = Vec::new();
    let first = get_json!(&app, "/v1/page_number?per_page=40");
    let total_pages = first["total_pages"].as_u64().unwrap();
    assert_eq!(total_pages, 7);
    for page in 1..=total_pages {
        let body = get_json!(&app, &format!("/v1/page_number?page={page}&per_page=40"));
        assert_eq!(body["page"], json!(page));
        seen.extend(ids(&body["data"]));
    }
    assert_exactly_once(&seen, 1..=N);
    let past = send(&app, get("/v1/page_number?page=8&per_page=40").to_request()).await;
    assert_eq!(past.status, StatusCode::OK);
    assert_eq!(past.json()["data"], json!([]));
}

#[actix_web::test]
async fn walks_cursor_to_the_end() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    let mut seen = Vec::new();
    let mut uri = "/v1/cursor?limit=60".to_owned();
    loop {
        let body = get_json!(&app, &uri);
        seen.extend(ids(&body["data"]));
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(body["has_more"], json!(true));
                uri = format!("/v1/cursor?limit=60&cursor={c}");
            }
            None => {
                assert_eq!(body["has_more"], json!(false));
                break;
            }
        }
    }
    assert_exactly_once(&seen, 1..=N);
}

#[actix_web::test]
async fn walks_next_url_to_the_end() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    let seen = walk_next_links!(&app, "/v1/next_url?limit=100", "limit=100");
    assert_exactly_once(&seen, 1..=N);
}

#[actix_web::test]
async fn walks_link_header_to_the_end() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    let mut seen = Vec::new();
    let mut uri = "/v1/link_header?per_page=90".to_owned();
    loop {
        let r = send(&app, get(&uri).to_request()).await;
        seen.extend(ids(&r.json()));
        let Some(link) = r.header(header::LINK) else {
            break;
        };
        let target = link
            .strip_prefix('<')
            .and_then(|l| l.strip_suffix(">; rel=\"next\""))
            .unwrap_or_else(|| panic!("malformed Link {link}"));
        uri = relative(target);
    }
    assert_exactly_once(&seen, 1..=N);
}

#[actix_web::test]
async fn all_returns_every_record_and_matches_dataset() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    let body = get_json!(&app, "/v1/all");
    assert_exactly_once(&ids(&body), 1..=N);
    assert_eq!(body[41], record(42));
}

#[test]
fn records_are_deterministic_and_shaped() {
    let r = record(1);
    assert_eq!(r, record(1));
    let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "id",
        "userName",
        "email",
        "score",
        "active",
        "createdAt",
        "tags",
        "address",
    ]
    .into();
    assert_eq!(keys, expected);
    assert_eq!(r["userName"], "user-000001");
    assert_eq!(r["email"], "user1@example.test");
    assert!(r["score"].is_f64());
    assert_eq!(r["active"], true);
    assert_eq!(r["createdAt"], "2026-01-01T00:01:00Z");
    assert_eq!(r["tags"], json!(["t1", "g1"]));
    assert_eq!(
        r["address"],
        json!({"city": dataset::CITIES[1], "zip": "00013"})
    );

    let five = record(1005);
    assert_eq!(five["score"], json!(5));
    assert!(five["score"].is_u64());
    assert_eq!(record(3)["active"], false);
    assert_eq!(record(1440)["createdAt"], "2026-01-02T00:00:00Z");
    assert_eq!(record(525_600)["createdAt"], "2027-01-01T00:00:00Z");
    assert_eq!(record(789 * 1440)["createdAt"], "2028-02-29T00:00:00Z");
    // Absurd ids must not panic, and keep the dates the dataset always served.
    assert_eq!(
        record(u64::MAX)["createdAt"],
        "35073242957257-04-29T12:15:00Z"
    );
    assert_eq!(record(4_190_000_000)["createdAt"], "9992-07-20T05:20:00Z");
}

#[actix_web::test]
async fn status_fault_answers_429_with_retry_after_then_recovers() {
    let (app, _) = app!(MockApiConfig::with_records(10));
    let fault = json!({"kind": "status", "status": 429, "retry_after_secs": 2, "count": 2});
    let r = send(&app, post_json("/_admin/faults", fault).to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"queued": 1}));
    for _ in 0..2 {
        let r = send(&app, get("/v1/all").to_request()).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.header(header::RETRY_AFTER).as_deref(), Some("2"));
    }
    let r = send(&app, get("/v1/all").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    let stats = get_json!(&app, "/_admin/stats");
    assert_eq!(
        stats,
        json!({"requests": 3, "by_status": {"200": 1, "429": 2}, "records": 10})
    );
    let log = get_json!(&app, "/_admin/requests");
    assert_eq!(log.as_array().unwrap().len(), 3);
    assert_eq!(log[0]["seq"], 1);
    assert_eq!(log[0]["path"], "/v1/all");
    assert_eq!(log[2]["status"], 200);
}

#[actix_web::test]
async fn faults_are_validated_listed_and_cleared() {
    let (app, _) = app!(MockApiConfig::with_records(10));
    for bad in [
        json!({"kind": "status"}),
        json!({"kind": "status", "status": 200}),
        json!({"kind": "explode"}),
        json!({"kind": "truncate", "count": 0}),
        json!({"kind": "latency", "ms": "x"}),
    ] {
        let r = send(&app, post_json("/_admin/faults", bad.clone()).to_request()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json()["error"].is_string());
    }
    let both = json!([{"kind": "latency", "ms": 1}, {"kind": "truncate"}]);
    let r = send(&app, post_json("/_admin/faults", both).to_request()).await;
    assert_eq!(r.json(), json!({"queued": 2}));
    let listed = get_json!(&app, "/_admin/faults");
    assert_eq!(
        listed,
        json!([{"kind": "latency", "ms": 1, "count": 1}, {"kind": "truncate", "count": 1}])
    );
    let r = send(
        &app,
        TestRequest::delete().uri("/_admin/faults").to_request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, get("/v1/all").to_request()).await;
    assert_eq!(ids(&r.json()).len(), 10);
}

#[actix_web::test]
async fn truncate_fault_cuts_the_body_in_half() {
    let (app, state) = app!(MockApiConfig::with_records(20));
    let whole = send(&app, get("/v1/limit_offset").to_request()).await.body;
    state.push_fault(FaultSpec {
        fault: Fault::Truncate,
        count: 1,
    });
    let r = send(&app, get("/v1/limit_offset").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), whole.len() / 2);
    assert_eq!(r.body, whole.slice(..whole.len() / 2));
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
}

#[actix_web::test]
async fn latency_fault_delays_and_is_logged() {
    let (app, state) = app!(MockApiConfig::with_records(5));
    state.push_fault(FaultSpec {
        fault: Fault::Latency { ms: 60 },
        count: 1,
    });
    let r = send(&app, get("/v1/all").to_request()).await;
    assert_eq!(r.status, StatusCode::OK);
    let log = state.requests();
    assert!(log[0].latency_ms >= 60, "{log:?}");
}

#[actix_web::test]
async fn auth_rejects_missing_or_wrong_credentials() {
    let (app, _) = app!(MockApiConfig {
        records: 3,
        bearer_token: Some("s3cret".into()),
        ..MockApiConfig::default()
    });
    let r = send(&app, get("/v1/all").to_request()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), json!({"error": "unauthorized"}));
    let wrong = get("/v1/all").insert_header((header::AUTHORIZATION, "Bearer nope"));
    assert_eq!(
        send(&app, wrong.to_request()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let right = get("/v1/all").insert_header((header::AUTHORIZATION, "Bearer s3cret"));
    assert_eq!(send(&app, right.to_request()).await.status, StatusCode::OK);
    // Admin endpoints stay open.
    assert_eq!(
        send(&app, get("/_admin/health").to_request()).await.status,
        StatusCode::OK
    );

    let (app, _) = app!(MockApiConfig {
        records: 3,
        api_key: Some("k1".into()),
        ..MockApiConfig::default()
    });
    assert_eq!(
        send(&app, get("/v1/all").to_request()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let header_key = get("/v1/all").insert_header(("X-Api-Key", "k1"));
    assert_eq!(
        send(&app, header_key.to_request()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get("/v1/all?api_key=k1").to_request())
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get("/v1/all?api_key=k2").to_request())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let (app, _) = app!(MockApiConfig {
        records: 3,
        basic: Some(("alice".into(), "pa:ss".into())),
        ..MockApiConfig::default()
    });
    // base64("alice:pa:ss") and base64("alice:wrong").
    let good = get("/v1/all").insert_header((header::AUTHORIZATION, "Basic YWxpY2U6cGE6c3M="));
    assert_eq!(send(&app, good.to_request()).await.status, StatusCode::OK);
    let bad = get("/v1/all").insert_header((header::AUTHORIZATION, "Basic YWxpY2U6d3Jvbmc="));
    assert_eq!(
        send(&app, bad.to_request()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let junk = get("/v1/all").insert_header((header::AUTHORIZATION, "Basic !!!"));
    assert_eq!(
        send(&app, junk.to_request()).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn base64_decoder_handles_padding_and_garbage() {
    use auth::decode_base64;
    assert_eq!(decode_base64("").unwrap(), b"");
    assert_eq!(decode_base64("YQ==").unwrap(), b"a");
    assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
    assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
    assert_eq!(decode_base64("YWJjZA").unwrap(), b"abcd");
    assert!(decode_base64("Y").is_none());
    assert!(decode_base64("YQ===").is_none());
    assert!(decode_base64("a b=").is_none());
}

#[actix_web::test]
async fn grow_appends_records() {
    let (app, _) = app!(MockApiConfig::with_records(100));
    let r = send(
        &app,
        post_json("/_admin/grow", json!({"count": 5})).to_request(),
    )
    .await;
    assert_eq!(r.json(), json!({"records": 105}));
    let body = get_json!(&app, "/v1/limit_offset?offset=100");
    assert_eq!(body["total"], 105);
    assert_eq!(ids(&body["data"]), vec![101, 102, 103, 104, 105]);
    let bad = send(
        &app,
        post_json("/_admin/grow", json!({"count": -1})).to_request(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let stats = get_json!(&app, "/_admin/stats");
    assert_eq!(stats["records"], 105);
}

#[actix_web::test]
async fn from_id_to_id_restrict_every_endpoint() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    let body = get_json!(&app, "/v1/limit_offset?from_id=10&to_id=20&limit=5");
    assert_eq!(body["total"], 11);
    assert_eq!(ids(&body["data"]), vec![10, 11, 12, 13, 14]);

    // Walk a shard with next links: bounds are kept, nothing leaks out.
    let first = "/v1/next_url?from_id=100&to_id=149&limit=20";
    let seen = walk_next_links!(&app, first, "&from_id=100&to_id=149");
    assert_exactly_once(&seen, 100..=149);

    let r = send(
        &app,
        get("/v1/link_header?from_id=1&to_id=30&per_page=10").to_request(),
    )
    .await;
    assert_eq!(
        r.header(header::LINK).unwrap(),
        format!(
            "<http://{HOST}/v1/link_header?page=2&per_page=10&from_id=1&to_id=30>; rel=\"next\""
        )
    );
    let body = get_json!(&app, "/v1/page_number?from_id=250&per_page=5");
    assert_eq!(body["total_pages"], 2);
    let body = get_json!(&app, "/v1/cursor?from_id=255&to_id=999");
    assert_eq!(ids(&body["data"]), vec![255, 256, 257]);
    assert_eq!(body["has_more"], false);
    let body = get_json!(&app, "/v1/all?from_id=300");
    assert_eq!(body, json!([]));
}

#[actix_web::test]
async fn invalid_parameters_are_400_naming_the_parameter() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    for (uri, name) in [
        ("/v1/limit_offset?limit=0", "limit"),
        ("/v1/limit_offset?limit=1001", "limit"),
        ("/v1/limit_offset?offset=-1", "offset"),
        ("/v1/page_number?page=0", "page"),
        ("/v1/page_number?per_page=x", "per_page"),
        ("/v1/cursor?cursor=zz", "cursor"),
        ("/v1/next_url?after=1.5", "after"),
        ("/v1/link_header?page=", "page"),
        ("/v1/all?from_id=0", "from_id"),
        ("/v1/all?from_id=9&to_id=3", "to_id"),
    ] {
        let r = send(&app, get(uri).to_request()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        let body = r.json();
        assert_eq!(body["parameter"], name, "{uri}");
        assert!(
            body["error"].as_str().unwrap().contains(name),
            "{uri}: {body}"
        );
    }
    let r = send(&app, get("/nope").to_request()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Sends one HTTP/1.1 request over a real socket and returns (head, body).
async fn raw_http(addr: std::net::SocketAddr, path: &str) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    (head, raw[split + 4..].to_vec())
}

/// The Content-Length header of a raw response head.
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("content-length header")
}

#[tokio::test]
async fn serves_over_a_real_socket_and_stops() {
    let api = start(
        MockApiConfig::with_records(30),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(api.url(), format!("http://127.0.0.1:{}", api.addr().port()));
    assert_ne!(api.addr().port(), 0);

    let (head, body) = raw_http(api.addr(), "/_admin/health").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"ok");

    let (head, body) = raw_http(api.addr(), "/v1/next_url?limit=10").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let json: Value = serde_json::from_slice(&body).unwrap();
    let expected_next = format!("{}/v1/next_url?after=10&limit=10", api.url());
    assert_eq!(json["next"], expected_next);

    api.state().push_fault(FaultSpec {
        fault: Fault::Truncate,
        count: 1,
    });
    let (head, cut) = raw_http(api.addr(), "/v1/next_url?limit=10").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(cut.len(), body.len() / 2);
    assert_eq!(content_length(&head), cut.len());

    let addr = api.addr();
    api.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[actix_web::test]
async fn updated_serves_what_changed_after_a_time_and_the_planted_far_future_record() {
    let (app, _) = app!(MockApiConfig::with_records(N));
    let after = dataset::created_at(200);
    let mut seen = Vec::new();
    let mut uri = format!("/v1/updated?limit=25&far_future_id=100&updated_after={after}");
    loop {
        let body = get_json!(&app, &uri);
        for r in body["data"].as_array().unwrap() {
            let id = r["id"].as_u64().unwrap();
            let expected = if id == 100 {
                updated::FAR_FUTURE.to_string()
            } else {
                dataset::created_at(id)
            };
            assert_eq!(r["createdAt"], json!(expected), "{r}");
        }
        seen.extend(ids(&body["data"]));
        match body["next_cursor"].as_str() {
            Some(c) => {
                uri = format!(
                    "/v1/updated?limit=25&far_future_id=100&updated_after={after}&cursor={c}"
                )
            }
            None => break,
        }
    }
    // Ids after 200, and the far-future record (dated after any time) on the first page.
    assert_eq!(seen[0], 100);
    assert_exactly_once(&seen[1..], 201..=N);
    // Without the plant, nothing is after the last record's date.
    let last = dataset::created_at(N);
    let body = get_json!(&app, &format!("/v1/updated?updated_after={last}"));
    assert_eq!(body["data"], json!([]));
    assert_eq!(body["has_more"], json!(false));
    let bad = send(
        &app,
        get("/v1/updated?updated_after=yesterday").to_request(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
