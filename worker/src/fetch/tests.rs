//! Pure tests of link headers, next positions, records and retry timing; HTTP tests against a
//! tiny hand-written HTTP/1.1 server on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apitap_common::checkpoint::Position;
use apitap_common::error::ErrorClass;
use apitap_common::jsonpath::JsonPath;
use apitap_common::spec::{HttpSource, Pagination, Retry};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use super::paginate::{extract_records, PageView, Paginator};
use super::request::{Redactor, RequestTemplate};
use super::retry::{parse_retry_after, RetryPolicy};
use super::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

pub(super) fn source(v: Value) -> HttpSource {
    serde_json::from_value(v).expect("valid http source")
}

fn pagination(v: Value) -> Pagination {
    serde_json::from_value(v).expect("valid pagination")
}

pub(super) fn no_vars() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// A fetcher of the HTTP source `v` (JSON of the spec's `source.http`), without variables.
pub(super) fn fetcher(v: Value) -> Result<Fetcher, FetchError> {
    Fetcher::new(client(), &source(v), &no_vars())
}

/// A fetcher of `url` that tries `attempts` times with a fast back-off, and the retries it
/// reported so far.
fn retry_recorder(url: String, attempts: u32) -> (Fetcher, Arc<Mutex<Vec<RetryEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let f = fetcher(json!({"url": url, "retry": fast_retry(attempts)}))
        .unwrap()
        .on_retry(move |e| seen.lock().unwrap().push(e.clone()));
    (f, events)
}

/// A fetcher of `url` that sends the API key `secret` as the query parameter `name` and
/// tries `attempts` times with a fast back-off: where a secret must stay out of errors
/// and logs.
fn keyed_fetcher(url: impl Into<String>, name: &str, secret: &str, attempts: u32) -> Fetcher {
    fetcher(json!({
        "url": url.into(),
        "auth": {"api_key": {"name": name, "value": secret, "in": "query"}},
        "retry": fast_retry(attempts),
    }))
    .unwrap()
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Fast retries for tests.
pub(super) fn fast_retry(max_attempts: u32) -> Value {
    json!({"max_attempts": max_attempts, "initial_backoff": "10ms", "max_backoff": "1s"})
}

fn ids(records: &[Value]) -> Vec<i64> {
    records.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// Fetches from `Start` until `Done`; returns the ids seen and the pages fetched.
async fn walk(fetcher: &Fetcher) -> (Vec<i64>, u64) {
    let mut position = Position::Start;
    let (mut pages, mut records) = (0u64, 0u64);
    let mut seen = Vec::new();
    while position != Position::Done {
        let page = fetcher.fetch(&position, pages, records).await.unwrap();
        assert_eq!(page.status, 200);
        pages += 1;
        records += page.records.len() as u64;
        seen.extend(ids(&page.records));
        position = page.next;
        assert!(pages < 20, "pagination does not end");
    }
    (seen, pages)
}

/// The records `1..=7` cut into pages of `size` starting at `offset`.
fn slice(offset: u64, size: u64) -> Vec<Value> {
    (offset + 1..=7)
        .take(size as usize)
        .map(|id| json!({"id": id}))
        .collect()
}

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(super) struct Req {
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Req {
    fn url(&self) -> Url {
        Url::parse(&format!("http://server{}", self.target)).unwrap()
    }
    pub(super) fn path(&self) -> String {
        self.url().path().to_string()
    }
    fn params(&self, name: &str) -> Vec<String> {
        self.url()
            .query_pairs()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    }
    pub(super) fn param(&self, name: &str) -> Option<String> {
        self.params(name).into_iter().next()
    }
    fn num(&self, name: &str) -> Option<u64> {
        self.param(name).map(|v| v.parse().unwrap())
    }
    pub(super) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    delay: Duration,
    /// Written instead of a well-formed response, then the connection is closed.
    raw: Option<Vec<u8>>,
}

impl Reply {
    pub(super) fn json(status: u16, body: Value) -> Self {
        Self::text(status, &body.to_string())
    }
    pub(super) fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
            raw: None,
        }
    }
    pub(super) fn raw(bytes: &str) -> Self {
        let mut r = Self::text(200, "");
        r.raw = Some(bytes.as_bytes().to_vec());
        r
    }
    pub(super) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Handler = Arc<dyn Fn(&Req, usize) -> Reply + Send + Sync>;

pub(super) struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves `handler(request, index of the request)` until dropped.
    pub(super) async fn start(
        handler: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<Req>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(serve(sock, handler, log));
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(super) fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    /// The number each request sent as the query parameter `name` (absent: `None`).
    fn nums(&self, name: &str) -> Vec<Option<u64>> {
        self.requests().iter().map(|r| r.num(name)).collect()
    }
}

async fn serve(mut sock: TcpStream, handler: Handler, log: Arc<Mutex<Vec<Req>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let req = Req { target, headers };
    let index = {
        let mut log = log.lock().unwrap();
        log.push(req.clone());
        log.len() - 1
    };
    let reply = handler(&req, index);
    tokio::time::sleep(reply.delay).await;
    if let Some(raw) = reply.raw {
        let _ = sock.write_all(&raw).await;
        let _ = sock.shutdown().await;
        return;
    }
    let mut out = format!("HTTP/1.1 {} Whatever\r\n", reply.status);
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&reply.body);
    let _ = sock.write_all(&bytes).await;
    let _ = sock.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Link header (pure)
// ---------------------------------------------------------------------------------------

#[test]
fn link_header_github_style() {
    let h = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
    let links = parse_link_header(h);
    assert_eq!(links.len(), 2);
    assert_eq!(links[1].rels(), vec!["last"]);
    assert_eq!(
        next_link(h).as_deref(),
        Some("https://api.github.com/repositories/1/issues?page=2")
    );
}

#[test]
fn link_header_rel_lists_unquoted_and_odd_params() {
    // Quoted commas and semicolons inside parameters, rel lists, unquoted rel, case.
    let h = r#"</a?x=1,2>; title="a, b; c"; rel="prev first", </next?page=3>;rel="last NEXT" ; type=text/html, <other>; rel=next"#;
    let links = parse_link_header(h);
    assert_eq!(links.len(), 3);
    assert_eq!(links[0].target, "/a?x=1,2");
    assert_eq!(
        links[0].params[0],
        ("title".to_string(), Some("a, b; c".to_string()))
    );
    assert_eq!(links[1].rels(), vec!["last", "next"]);
    assert_eq!(
        links[1].params[1],
        ("type".to_string(), Some("text/html".to_string()))
    );
    assert_eq!(next_link(h).as_deref(), Some("/next?page=3"));
    assert_eq!(next_link("<other>; rel=next").as_deref(), Some("other"));
    assert_eq!(next_link("<x>; REL=Next").as_deref(), Some("x"));
}

#[test]
fn link_header_without_next_or_malformed() {
    assert_eq!(next_link(r#"<https://x/1>; rel="prev""#), None);
    assert_eq!(next_link(""), None);
    assert_eq!(next_link("garbage, more garbage"), None);
    assert_eq!(next_link("<unclosed; rel=next"), None);
    // A broken link does not hide a good one after it.
    assert_eq!(
        next_link(r#"<a> junk junk, <b>; rel="next""#).as_deref(),
        Some("b")
    );
    // `rel` without a value, and a bare parameter.
    assert_eq!(next_link("<a>; rel; crossorigin"), None);
}

// ---------------------------------------------------------------------------------------
// Next position and stop conditions (pure)
// ---------------------------------------------------------------------------------------

struct View {
    position: Position,
    url: Url,
    body: Value,
    link: Option<String>,
    count: u64,
    pages_done: u64,
    records_done: u64,
    last: Option<Value>,
}

impl View {
    fn new(position: Position, body: Value, count: u64) -> Self {
        Self {
            position,
            url: Url::parse("https://api.example.com/v1/items?q=1").unwrap(),
            body,
            link: None,
            count,
            pages_done: 0,
            records_done: 0,
            last: None,
        }
    }
    fn next(&self, p: Value) -> Result<Position, String> {
        Paginator::new(&pagination(p)).unwrap().next(&PageView {
            position: &self.position,
            url: &self.url,
            body: &self.body,
            last: self.last.as_ref(),
            link: self.link.as_deref(),
            count: self.count,
            pages_done: self.pages_done,
            records_done: self.records_done,
        })
    }
}

#[test]
fn next_offset_and_page() {
    let lo = json!({"kind": "limit_offset", "size": 10});
    assert_eq!(
        View::new(Position::Start, json!([]), 10).next(lo.clone()),
        Ok(Position::Offset { offset: 10 })
    );
    assert_eq!(
        View::new(Position::Offset { offset: 30 }, json!([]), 4).next(lo.clone()),
        Ok(Position::Offset { offset: 34 })
    );
    assert_eq!(
        View::new(Position::Offset { offset: 30 }, json!([]), 0).next(lo),
        Ok(Position::Done)
    );
    let pn = json!({"kind": "page_number", "start_page": 0});
    assert_eq!(
        View::new(Position::Start, json!([]), 5).next(pn.clone()),
        Ok(Position::Page { page: 1 })
    );
    assert_eq!(
        View::new(Position::Page { page: 7 }, json!([]), 5).next(pn),
        Ok(Position::Page { page: 8 })
    );
    assert_eq!(
        View::new(Position::Start, json!([]), 5).next(json!({"kind": "none"})),
        Ok(Position::Done)
    );
}

#[test]
fn max_pages_and_total_stop() {
    let mut v = View::new(
        Position::Page { page: 3 },
        json!({"meta": {"total": 25}}),
        10,
    );
    v.pages_done = 1;
    v.records_done = 10;
    let p = |extra: Value| {
        let mut base = json!({"kind": "page_number"});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    };
    // Two pages (20 records) of 25: go on.
    assert_eq!(
        v.next(p(json!({"total_path": "$.meta.total"}))),
        Ok(Position::Page { page: 4 })
    );
    assert_eq!(
        v.next(p(json!({"max_pages": 3}))),
        Ok(Position::Page { page: 4 })
    );
    // This is the 2nd page of at most 2.
    assert_eq!(v.next(p(json!({"max_pages": 2}))), Ok(Position::Done));
    v.records_done = 15;
    assert_eq!(
        v.next(p(json!({"total_path": "$.meta.total"}))),
        Ok(Position::Done)
    );
    // Totals as strings count; missing or null totals are unknown.
    v.body = json!({"meta": {"total": "25"}});
    assert_eq!(
        v.next(p(json!({"total_path": "$.meta.total"}))),
        Ok(Position::Done)
    );
    v.body = json!({"meta": {"total": null}});
    assert_eq!(
        v.next(p(json!({"total_path": "$.meta.total"}))),
        Ok(Position::Page { page: 4 })
    );
    v.body = json!({"meta": {"total": "many"}});
    let err = v
        .next(p(json!({"total_path": "$.meta.total"})))
        .unwrap_err();
    assert!(
        err.contains("$.meta.total") && err.contains("a string"),
        "{err}"
    );
}

#[test]
fn cursor_next_and_stops() {
    let p = json!({"kind": "cursor", "cursor_path": "$.next", "has_more_path": "$.more"});
    let at = |body: Value| {
        View::new(
            Position::Cursor {
                cursor: "c1".into(),
            },
            body,
            3,
        )
    };
    assert_eq!(
        at(json!({"next": "c2", "more": true})).next(p.clone()),
        Ok(Position::Cursor {
            cursor: "c2".into()
        })
    );
    assert_eq!(
        at(json!({"next": 42})).next(p.clone()),
        Ok(Position::Cursor {
            cursor: "42".into()
        })
    );
    assert_eq!(
        at(json!({"next": "c2", "more": false})).next(p.clone()),
        Ok(Position::Done)
    );
    assert_eq!(
        at(json!({"next": null})).next(p.clone()),
        Ok(Position::Done)
    );
    assert_eq!(at(json!({"next": ""})).next(p.clone()), Ok(Position::Done));
    assert_eq!(at(json!({})).next(p.clone()), Ok(Position::Done));
    let err = at(json!({"next": "c1"})).next(p.clone()).unwrap_err();
    assert!(err.contains("just sent"), "{err}");
    let err = at(json!({"next": {"a": 1}})).next(p.clone()).unwrap_err();
    assert!(err.contains("$.next") && err.contains("an object"), "{err}");
    let err = at(json!({"next": "c2", "more": "yes"}))
        .next(p)
        .unwrap_err();
    assert!(err.contains("$.more") && err.contains("boolean"), "{err}");
}

#[test]
fn a_cursor_from_the_last_record_or_from_anywhere_in_the_body() {
    let by_field = json!({"kind": "cursor", "cursor_field": "id", "cursor_param": "starting_after",
        "has_more_path": "$.has_more", "size": 3});
    let page = |has_more: bool, last: Value, count: u64| {
        let mut v = View::new(Position::Start, json!({"has_more": has_more}), count);
        v.last = Some(last);
        v
    };
    assert_eq!(
        page(true, json!({"id": "cus_3"}), 3).next(by_field.clone()),
        Ok(Position::Cursor {
            cursor: "cus_3".into()
        })
    );
    assert_eq!(
        page(false, json!({"id": "cus_3"}), 3).next(by_field.clone()),
        Ok(Position::Done)
    );
    let err = page(true, json!({"name": "x"}), 3)
        .next(by_field)
        .unwrap_err();
    assert!(
        err.contains("has_more says") && err.contains("`id`"),
        "{err}"
    );
    // A path may point into the records: they are still in the body.
    let by_path = json!({"kind": "cursor", "cursor_path": "$.data[-1].id", "size": 2});
    let v = View::new(Position::Start, json!({"data": [{"id": 1}, {"id": 2}]}), 2);
    assert_eq!(v.next(by_path), Ok(Position::Cursor { cursor: "2".into() }));
}

#[test]
fn a_full_page_without_a_next_pointer_is_an_error_not_the_end() {
    let p = |extra: Value| {
        let mut base = json!({"kind": "cursor", "cursor_path": "$.data[47].id", "size": 48});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    };
    let full = View::new(Position::Start, json!({"data": []}), 48);
    let err = full.next(p(json!({}))).unwrap_err();
    assert!(
        err.contains("the page was full (48 records") && err.contains("stop_on: no_next"),
        "{err}"
    );
    assert_eq!(
        full.next(p(json!({"stop_on": "no_next"}))),
        Ok(Position::Done)
    );
    let short = View::new(Position::Start, json!({"data": []}), 20);
    assert_eq!(short.next(p(json!({}))), Ok(Position::Done));
    // The same for next_url and link_header once their page size is given.
    let next_url = json!({"kind": "next_url", "next_url_path": "$.next", "size": 10});
    let v = View::new(Position::Start, json!({"next": null}), 10);
    assert!(v.next(next_url).unwrap_err().contains("the page was full"));
    let link = json!({"kind": "link_header", "size": 10});
    assert!(v.next(link).unwrap_err().contains("Link"));
}

#[test]
fn next_url_and_link_header_resolution() {
    let p = json!({"kind": "next_url", "next_url_path": "$.links.next"});
    let v = |next: Value| View::new(Position::Start, json!({"links": {"next": next}}), 2);
    assert_eq!(
        v(json!("/v1/items?page=2")).next(p.clone()),
        Ok(Position::Url {
            url: "https://api.example.com/v1/items?page=2".into()
        })
    );
    assert_eq!(
        v(json!("?page=3")).next(p.clone()),
        Ok(Position::Url {
            url: "https://api.example.com/v1/items?page=3".into()
        })
    );
    assert_eq!(
        v(json!("https://other.example.com/p2")).next(p.clone()),
        Ok(Position::Url {
            url: "https://other.example.com/p2".into()
        })
    );
    assert_eq!(v(json!(null)).next(p.clone()), Ok(Position::Done));
    assert_eq!(v(json!("")).next(p.clone()), Ok(Position::Done));
    let err = v(json!("http://api.example.com/p2"))
        .next(p.clone())
        .unwrap_err();
    assert!(err.contains("downgrade"), "{err}");
    let err = v(json!("ftp://x/y")).next(p.clone()).unwrap_err();
    assert!(err.contains("ftp"), "{err}");
    let err = v(json!(3)).next(p).unwrap_err();
    assert!(err.contains("a number"), "{err}");

    let mut view = View::new(Position::Start, json!([]), 2);
    view.link = Some(r#"<items?page=2>; rel="next", <items?page=9>; rel="last""#.into());
    assert_eq!(
        view.next(json!({"kind": "link_header"})),
        Ok(Position::Url {
            url: "https://api.example.com/v1/items?page=2".into()
        })
    );
    view.link = Some(r#"<items?page=9>; rel="last""#.into());
    assert_eq!(
        view.next(json!({"kind": "link_header"})),
        Ok(Position::Done)
    );
    view.link = None;
    assert_eq!(
        view.next(json!({"kind": "link_header"})),
        Ok(Position::Done)
    );
}

#[test]
fn paginator_needs_its_paths() {
    assert!(Paginator::new(&pagination(json!({"kind": "cursor"}))).is_err());
    assert!(Paginator::new(&pagination(json!({"kind": "next_url"}))).is_err());
    let err = Paginator::new(&pagination(
        json!({"kind": "cursor", "cursor_path": "next"}),
    ))
    .unwrap_err();
    assert!(err.contains("cursor_path"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Records (pure)
// ---------------------------------------------------------------------------------------

#[test]
fn records_are_taken_from_the_body() {
    let path = JsonPath::parse("$.data.items").unwrap();
    let mut body = json!({"data": {"items": [{"id": 1}, {"id": 2}], "next": "x"}});
    let records = extract_records(&path, &mut body).unwrap();
    assert_eq!(ids(&records), vec![1, 2]);
    // The rest of the body is still there for pagination.
    assert_eq!(body["data"]["next"], json!("x"));

    let root = JsonPath::parse("$").unwrap();
    assert_eq!(
        extract_records(&root, &mut json!([{"id": 3}]))
            .unwrap()
            .len(),
        1
    );
    let mut null = json!({"data": {"items": null}});
    assert!(extract_records(&path, &mut null).unwrap().is_empty());
}

#[test]
fn records_errors_name_the_path_and_what_was_found() {
    let path = JsonPath::parse("$.items").unwrap();
    let err = extract_records(&path, &mut json!({"items": {"a": 1}})).unwrap_err();
    assert!(
        err.contains("$.items") && err.contains("an object with keys [a]"),
        "{err}"
    );
    let err = extract_records(&path, &mut json!({"data": []})).unwrap_err();
    assert!(
        err.contains("$.items") && err.contains("found nothing") && err.contains("[data]"),
        "{err}"
    );
    let err = extract_records(&path, &mut json!({"items": [{"id": 1}, 2]})).unwrap_err();
    assert!(err.contains("record #1 is a number"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Requests, secrets, retry timing (pure)
// ---------------------------------------------------------------------------------------

#[test]
fn urls_for_each_position() {
    let vars = BTreeMap::from([("shard.value".to_string(), "rust-lang/rust".to_string())]);
    let src = |p: Value| {
        source(json!({
            "url": "https://api.example.com/repos/{{ shard.value }}/issues",
            "query": {"state": "all", "repo": "{{ shard.value }}"},
            "auth": {"api_key": {"name": "api_key", "value": "s3cr3t-key", "in": "query"}},
            "pagination": p,
        }))
    };
    let lo =
        RequestTemplate::new(&src(json!({"kind": "limit_offset", "size": 50})), &vars).unwrap();
    assert_eq!(
        lo.url_for(&Position::Start).unwrap().as_str(),
        "https://api.example.com/repos/rust-lang/rust/issues?repo=rust-lang%2Frust&state=all&limit=50&offset=0&api_key=s3cr3t-key"
    );
    assert_eq!(
        lo.url_for(&Position::Offset { offset: 150 })
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "offset")
            .unwrap()
            .1,
        "150"
    );
    let pn = RequestTemplate::new(
        &src(json!({"kind": "page_number", "page_param": "p", "size_param": "n", "start_page": 0})),
        &vars,
    )
    .unwrap();
    let u = pn.url_for(&Position::Start).unwrap();
    assert!(u.as_str().contains("p=0&n=100"), "{u}");
    let cur = RequestTemplate::new(
        &src(json!({"kind": "cursor", "cursor_path": "$.next", "size": 5})),
        &vars,
    )
    .unwrap();
    let u = cur.url_for(&Position::Start).unwrap();
    assert!(!u.as_str().contains("cursor="), "{u}");
    assert!(u.as_str().contains("limit=5"), "{u}");
    let u = cur
        .url_for(&Position::Cursor {
            cursor: "a b&c".into(),
        })
        .unwrap();
    assert!(u.as_str().contains("cursor=a+b%26c"), "{u}");

    // Mismatched positions are user errors with a hint.
    let err = lo.url_for(&Position::Page { page: 2 }).unwrap_err();
    assert_eq!(err.class(), ErrorClass::User);
    assert!(err.to_string().contains("limit_offset"), "{err}");
    assert_eq!(
        lo.url_for(&Position::Done).unwrap_err().class(),
        ErrorClass::Internal
    );
}

#[test]
fn stored_urls_keep_static_query_and_api_key_exactly_once() {
    let t = RequestTemplate::new(
        &source(json!({
            "url": "https://api.example.com/items",
            "query": {"state": "all"},
            "auth": {"api_key": {"name": "key", "value": "k3y-value", "in": "query"}},
            "pagination": {"kind": "next_url", "next_url_path": "$.next"},
        })),
        &no_vars(),
    )
    .unwrap();
    // Already complete: fetched as is.
    let full = "https://api.example.com/items?page=2&state=all&key=k3y-value";
    assert_eq!(
        t.url_for(&Position::Url { url: full.into() })
            .unwrap()
            .as_str(),
        full
    );
    // Missing pieces are added once; a server-changed static value is kept.
    let u = t
        .url_for(&Position::Url {
            url: "https://api.example.com/items?page=3&state=open".into(),
        })
        .unwrap();
    assert_eq!(
        u.as_str(),
        "https://api.example.com/items?page=3&state=open&key=k3y-value"
    );
    // A duplicated or foreign key is replaced by ours, once.
    let u = t
        .url_for(&Position::Url {
            url: "https://api.example.com/items?key=a&page=4&key=b&state=all".into(),
        })
        .unwrap();
    assert_eq!(u.query_pairs().filter(|(k, _)| k == "key").count(), 1);
    assert!(u.as_str().ends_with("key=k3y-value"), "{u}");
    // What is stored in a checkpoint has no api key.
    assert_eq!(
        t.without_api_key(Url::parse(full).unwrap()).as_str(),
        "https://api.example.com/items?page=2&state=all"
    );
    // Position kinds that do not fit are rejected.
    assert!(t.url_for(&Position::Offset { offset: 1 }).is_err());
}

#[test]
fn config_errors_are_user_errors_without_secrets() {
    let err = fetcher(json!({"url": "https://x/{{ nope }}"})).unwrap_err();
    assert_eq!(err.class(), ErrorClass::User);
    assert!(err.to_string().contains("nope"), "{err}");

    // An unclosed template quotes the text; the secret in it is scrubbed.
    let err = fetcher(json!({
        "url": "https://x/y",
        "headers": {"X-Api-Token": "t0ps3cret {{ open"},
    }))
    .unwrap_err();
    assert!(!err.to_string().contains("t0ps3cret"), "{err}");

    for bad in [
        json!({"url": "not a url"}),
        json!({"url": "ftp://x/y"}),
        json!({"url": "https://x", "records": "items"}),
        json!({"url": "https://x", "headers": {"bad header": "v"}}),
        json!({"url": "https://x", "pagination": {"kind": "cursor"}}),
    ] {
        let err = fetcher(bad.clone()).unwrap_err();
        assert!(matches!(err, FetchError::Config { .. }), "{bad}: {err}");
    }
}

#[test]
fn redactor_scrubs_plain_and_encoded_secrets() {
    let r = Redactor::new(["p@ss word".to_string(), "ab".to_string()]);
    assert_eq!(r.scrub("got p@ss word!"), "got ***!");
    assert_eq!(r.scrub("q=p%40ss+word"), "q=***");
    assert_eq!(r.scrub("/p%40ss%20word/"), "/***/");
    // Too short to scrub.
    assert_eq!(r.scrub("ab"), "ab");
    let u = Url::parse("https://user:pw@api.example.com:8443/a/b?key=v#frag").unwrap();
    assert_eq!(r.url(&u), "https://api.example.com:8443/a/b");
}

#[test]
fn retry_after_values() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_770); // Sun, 06 Nov 1994 08:49:30 GMT
    let secs = |n| Some(Duration::from_secs(n));
    let cases = [
        ("1", secs(1)),
        (" 120 ", secs(120)),
        ("0.5", Some(Duration::from_millis(500))),
        ("Sun, 06 Nov 1994 08:49:37 GMT", secs(7)),
        ("Sun, 06 Nov 1994 08:49:00 GMT", Some(Duration::ZERO)),
        ("soon", None),
        ("-3", None),
        // Floats too large for a Duration saturate instead of panicking; NaN is no delay.
        ("1e300", Some(Duration::MAX)),
        ("inf", Some(Duration::MAX)),
        ("NaN", None),
        // The two obsolete forms RFC 9110 requires recipients to accept.
        ("Sunday, 06-Nov-94 08:49:37 GMT", secs(7)),
        ("Sun Nov  6 08:49:37 1994", secs(7)),
    ];
    for (value, expected) in cases {
        assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
    }
    assert!(parse_retry_after("Thu, 01 Jan 2099 00:00:00 GMT", SystemTime::now()).is_some());
}

#[test]
fn retry_waits() {
    let policy = RetryPolicy::new(&Retry {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        ..Retry::default()
    });
    for attempt in 1..5 {
        let d = policy.wait(attempt, None);
        assert!(
            d >= Duration::from_millis(50) && d <= Duration::from_secs(2),
            "{d:?}"
        );
    }
    assert_eq!(
        policy.wait(1, Some(Duration::from_secs(3))),
        Duration::from_secs(3)
    );
    // Capped at 4 × max_backoff ...
    assert_eq!(
        policy.wait(1, Some(Duration::from_secs(60))),
        Duration::from_secs(8)
    );
    // ... and at 5 minutes.
    let slow = RetryPolicy::new(&Retry {
        max_attempts: 5,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(600),
        ..Retry::default()
    });
    assert_eq!(
        slow.wait(1, Some(Duration::from_secs(86_400))),
        MAX_RETRY_AFTER
    );
}

#[test]
fn a_pipeline_max_retry_after_caps_the_wait_below_the_global_clamps() {
    let policy = RetryPolicy::new(&Retry {
        max_retry_after: Duration::from_secs(2),
        ..Retry::default()
    });
    assert_eq!(policy.wait(1, Some(Duration::MAX)), Duration::from_secs(2));
    assert_eq!(
        policy.wait(1, Some(Duration::from_secs(1))),
        Duration::from_secs(1)
    );
    // The spec's ceiling is the coordinator's clamp, so a pipeline can only lower it.
    assert_eq!(
        apitap_common::limits::MAX_RETRY_AFTER_CEILING.as_millis(),
        u128::from(apitap_proto::limits::MAX_RETRY_AFTER_MS)
    );
}

#[test]
fn error_classes() {
    let status = |s: u16| FetchError::Status {
        url: "u".into(),
        status: s,
        body: String::new(),
        retry_after: None,
    };
    for s in [408, 429, 500, 502, 503, 504] {
        assert_eq!(status(s).class(), ErrorClass::Transient, "{s}");
        assert!(status(s).is_retriable(), "{s}");
    }
    for s in [400, 401, 403, 404, 410, 422, 301] {
        assert_eq!(status(s).class(), ErrorClass::User, "{s}");
        assert!(!status(s).is_retriable(), "{s}");
    }
    let invalid = FetchError::InvalidJson {
        url: "u".into(),
        bytes: 3,
        message: "eof".into(),
    };
    assert_eq!(invalid.class(), ErrorClass::Transient);
    let records = FetchError::Records {
        url: "u".into(),
        message: "m".into(),
    };
    assert_eq!(records.class(), ErrorClass::User);
}

#[test]
fn fetch_future_is_send_and_fetcher_is_sync() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<Fetcher>();
    let f = fetcher(json!({"url": "http://x/"})).unwrap();
    let fut = f.fetch(&Position::Start, 0, 0);
    assert_send(&fut);
}

// ---------------------------------------------------------------------------------------
// HTTP: retries
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn retries_5xx_until_success() {
    let server = Server::start(|_, i| {
        if i < 2 {
            Reply::text(500, "oops")
        } else {
            Reply::json(200, json!([{"id": 1}, {"id": 2}]))
        }
    })
    .await;
    let (f, events) = retry_recorder(server.url("/items"), 5);
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.attempts, 3);
    assert_eq!(page.status, 200);
    assert_eq!(ids(&page.records), vec![1, 2]);
    assert_eq!(page.next, Position::Done);
    assert_eq!(
        page.bytes,
        json!([{"id": 1}, {"id": 2}]).to_string().len() as u64
    );
    assert_eq!(server.requests().len(), 3);
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].attempt, 1);
    assert_eq!(events[1].status, Some(500));
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let server = Server::start(|_, i| {
        if i == 0 {
            Reply::text(429, r#"{"error":"slow down"}"#).header("Retry-After", "1")
        } else {
            Reply::json(200, json!([{"id": 1}]))
        }
    })
    .await;
    let (f, events) = retry_recorder(server.url("/items"), 3);
    let started = Instant::now();
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(page.attempts, 2);
    // Back-off alone would have waited at most 20 ms.
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let events = events.lock().unwrap();
    assert_eq!(events[0].status, Some(429));
    assert_eq!(events[0].retry_after, Some(Duration::from_secs(1)));
    assert_eq!(events[0].wait, Duration::from_secs(1));
}

#[tokio::test]
async fn client_errors_fail_at_once_without_secrets() {
    let server =
        Server::start(|_, _| Reply::text(401, r#"{"error": "invalid api key sup3r-s3cret-key"}"#))
            .await;
    let f = keyed_fetcher(server.url("/items"), "api_key", "sup3r-s3cret-key", 5);
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(err.class(), ErrorClass::User);
    assert_eq!(err.status(), Some(401));
    let text = err.to_string();
    assert!(!text.contains("sup3r-s3cret-key"), "{text}");
    assert!(!text.contains('?'), "{text}");
    assert!(text.contains("invalid api key ***"), "{text}");
    assert!(text.contains(&format!("{}/items", server.addr)), "{text}");
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let server = Server::start(|_, _| Reply::text(503, "busy")).await;
    let f = fetcher(json!({"url": server.url("/items"), "retry": fast_retry(2)})).unwrap();
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert_eq!(server.requests().len(), 2);
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(err.to_string().contains("HTTP 503: busy"), "{err}");
}

#[tokio::test]
async fn retries_truncated_and_invalid_bodies() {
    // The body stops before Content-Length, then a body that is not complete JSON.
    let server = Server::start(|_, i| match i {
        0 => Reply::raw(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"id\": 1},",
        ),
        1 => Reply::text(200, r#"[{"id": 1}, {"id""#),
        _ => Reply::json(200, json!([{"id": 1}])),
    })
    .await;
    let f = fetcher(json!({"url": server.url("/items"), "retry": fast_retry(5)})).unwrap();
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.attempts, 3);
    assert_eq!(ids(&page.records), vec![1]);

    let bad = Server::start(|_, _| Reply::text(200, "<html>maintenance</html>")).await;
    let f = fetcher(json!({"url": bad.url("/items"), "retry": fast_retry(2)})).unwrap();
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert!(matches!(err, FetchError::InvalidJson { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(bad.requests().len(), 2);
}

#[tokio::test]
async fn retries_timeouts() {
    let server = Server::start(|_, i| {
        let reply = Reply::json(200, json!([{"id": 1}]));
        if i == 0 {
            reply.delay(Duration::from_secs(3))
        } else {
            reply
        }
    })
    .await;
    let f = fetcher(json!({
        "url": server.url("/items"),
        "timeout": "300ms",
        "retry": fast_retry(3),
    }))
    .unwrap();
    let started = Instant::now();
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.attempts, 2);
    assert!(started.elapsed() < Duration::from_secs(2));

    // A server that never answers in time: the last attempt's timeout is the error.
    let slow =
        Server::start(|_, _| Reply::json(200, json!([])).delay(Duration::from_secs(3))).await;
    let f = fetcher(json!({"url": slow.url("/x"), "timeout": "200ms", "retry": fast_retry(1)}))
        .unwrap();
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Transport { timeout: true, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn connection_refused_is_transient_and_hides_the_query() {
    // A port bound but not listening refuses connections, and, unlike a closed listener's
    // port, no server of another test running beside this one can take it meanwhile.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = reserved.local_addr().unwrap();
    let f = keyed_fetcher(format!("http://{addr}/items"), "k", "very-secret-value", 2);
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert!(matches!(err, FetchError::Transport { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
    let text = format!("{err} {err:?}");
    assert!(!text.contains("very-secret-value"), "{text}");
}

// ---------------------------------------------------------------------------------------
// HTTP: requests, auth, bodies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sends_auth_headers_and_rendered_templates() {
    let server = Server::start(|_, _| Reply::json(200, json!({"items": [{"id": 1}]}))).await;
    let vars = BTreeMap::from([
        ("shard.value".to_string(), "acme".to_string()),
        ("watermark".to_string(), "2024-01-01".to_string()),
    ]);
    let f = Fetcher::new(
        client(),
        &source(json!({
            "url": server.url("/orgs/{{ shard.value }}/items"),
            "query": {"since": "{{ watermark }}"},
            "headers": {"X-Org": "{{ shard.value }}"},
            "auth": {"bearer": "tok-123"},
            "records": "$.items",
        })),
        &vars,
    )
    .unwrap();
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(ids(&page.records), vec![1]);
    let req = &server.requests()[0];
    assert_eq!(req.path(), "/orgs/acme/items");
    assert_eq!(req.param("since").as_deref(), Some("2024-01-01"));
    assert_eq!(req.header("x-org").as_deref(), Some("acme"));
    assert_eq!(
        req.header("authorization").as_deref(),
        Some("Bearer tok-123")
    );
    assert_eq!(req.header("accept").as_deref(), Some("application/json"));

    // Basic auth, then an API key in a header.
    let cases = [
        (
            json!({"basic": {"username": "user", "password": "pass"}}),
            "authorization",
            "Basic dXNlcjpwYXNz",
        ),
        (
            json!({"api_key": {"name": "X-Api-Key", "value": "k-1"}}),
            "x-api-key",
            "k-1",
        ),
    ];
    for (i, (auth, header, expected)) in cases.into_iter().enumerate() {
        let f = fetcher(json!({"url": server.url("/items"), "auth": auth, "records": "$.items"}))
            .unwrap();
        f.fetch(&Position::Start, 0, 0).await.unwrap();
        assert_eq!(
            server.requests()[i + 1].header(header).as_deref(),
            Some(expected),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn records_errors_and_no_content() {
    let server = Server::start(|req, _| match req.path().as_str() {
        "/object" => Reply::json(200, json!({"items": {"id": 1}})),
        "/scalars" => Reply::json(200, json!({"items": [1, 2]})),
        _ => Reply::text(204, ""),
    })
    .await;
    let fetcher = |path: &str| {
        fetcher(json!({"url": server.url(path), "records": "$.items", "retry": fast_retry(3)}))
            .unwrap()
    };
    let err = fetcher("/object")
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::User);
    assert!(err.to_string().contains("$.items"), "{err}");
    let err = fetcher("/scalars")
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::User);
    assert_eq!(server.requests().len(), 2, "user errors are not retried");

    let page = fetcher("/empty")
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap();
    assert!(page.records.is_empty());
    assert_eq!(page.next, Position::Done);
    assert_eq!(page.status, 204);
}

#[tokio::test]
async fn body_size_limit() {
    let server =
        Server::start(|_, _| Reply::json(200, json!([{"id": 1, "pad": "x".repeat(500)}]))).await;
    let f = fetcher(json!({"url": server.url("/items"), "retry": fast_retry(3)}))
        .unwrap()
        .with_max_body_bytes(100);
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert!(matches!(err, FetchError::BodyTooLarge { .. }), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn permit_is_awaited_before_every_request() {
    let server = Server::start(|_, i| {
        if i == 0 {
            Reply::text(502, "")
        } else {
            Reply::json(200, json!([]))
        }
    })
    .await;
    let permits = Arc::new(Mutex::new(0u32));
    let count = permits.clone();
    let f = fetcher(json!({"url": server.url("/items"), "retry": fast_retry(3)}))
        .unwrap()
        .with_permit(move || {
            *count.lock().unwrap() += 1;
            async {}
        });
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.attempts, 2);
    assert_eq!(*permits.lock().unwrap(), 2);
}

// ---------------------------------------------------------------------------------------
// HTTP: walking every pagination kind to Done
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn walks_none() {
    let server = Server::start(|_, _| Reply::json(200, json!([{"id": 1}, {"id": 2}]))).await;
    let f = fetcher(json!({"url": server.url("/all")})).unwrap();
    assert_eq!(walk(&f).await, (vec![1, 2], 1));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn walks_limit_offset() {
    let server = Server::start(|req, _| {
        let records = slice(req.num("skip").unwrap(), req.num("take").unwrap());
        Reply::json(200, json!({"data": records}))
    })
    .await;
    let f = fetcher(json!({
            "url": server.url("/items"),
            "records": "$.data",
            "pagination": {"kind": "limit_offset", "size": 3, "limit_param": "take", "offset_param": "skip"},
        }))
    .unwrap();
    // Three pages with records, then the empty page that stops it.
    assert_eq!(walk(&f).await, ((1..=7).collect(), 4));
    assert_eq!(server.nums("skip"), [0, 3, 6, 7].map(Some));
}

#[tokio::test]
async fn walks_page_number_with_total() {
    let server = Server::start(|req, _| {
        let page = req.num("page").unwrap();
        let size = req.num("per_page").unwrap();
        Reply::json(200, json!({"total": 7, "items": slice(page * size, size)}))
    })
    .await;
    let f = fetcher(json!({
        "url": server.url("/items"),
        "records": "$.items",
        "pagination": {"kind": "page_number", "size": 3, "start_page": 0, "total_path": "$.total"},
    }))
    .unwrap();
    assert_eq!(walk(&f).await, ((1..=7).collect(), 3));
    assert_eq!(server.nums("page"), [0, 1, 2].map(Some));
}

#[tokio::test]
async fn walks_page_number_with_max_pages() {
    let server = Server::start(|req, _| {
        let page = req.num("page").unwrap();
        Reply::json(200, json!(slice((page - 1) * 2, 2)))
    })
    .await;
    let f = fetcher(json!({
        "url": server.url("/items"),
        "pagination": {"kind": "page_number", "size": 2, "max_pages": 3},
    }))
    .unwrap();
    assert_eq!(walk(&f).await, ((1..=6).collect(), 3));
}

#[tokio::test]
async fn walks_cursor() {
    let server = Server::start(|req, _| {
        let offset = req
            .param("after")
            .map(|c| c.trim_start_matches('c').parse().unwrap())
            .unwrap_or(0);
        let size = req.num("limit").unwrap();
        let records = slice(offset, size);
        let next = offset + records.len() as u64;
        Reply::json(
            200,
            json!({"results": records, "meta": {"next": format!("c{next}"), "has_more": next < 7}}),
        )
    })
    .await;
    let f = fetcher(json!({
        "url": server.url("/items"),
        "records": "$.results",
        "pagination": {"kind": "cursor", "size": 3, "cursor_param": "after",
                       "cursor_path": "$.meta.next", "has_more_path": "$.meta.has_more"},
    }))
    .unwrap();
    assert_eq!(walk(&f).await, ((1..=7).collect(), 3));
    let cursors: Vec<Option<String>> = server.requests().iter().map(|r| r.param("after")).collect();
    assert_eq!(cursors, vec![None, Some("c3".into()), Some("c6".into())]);
}

#[tokio::test]
async fn walks_next_url_with_api_key_once() {
    let server = Server::start(|req, _| {
        let page = req.num("page").unwrap_or(1);
        // Relative links that echo the api key, as some APIs do.
        let next = (page < 3).then(|| format!("items?page={}&key=abc-secret", page + 1));
        Reply::json(
            200,
            json!({"items": slice((page - 1) * 3, 3), "next": next}),
        )
    })
    .await;
    let f = fetcher(json!({
        "url": server.url("/v1/items"),
        "query": {"fields": "id"},
        "auth": {"api_key": {"name": "key", "value": "abc-secret", "in": "query"}},
        "records": "$.items",
        "pagination": {"kind": "next_url", "next_url_path": "$.next"},
    }))
    .unwrap();

    // The stored next position has no secret.
    let first = f.fetch(&Position::Start, 0, 0).await.unwrap();
    let Position::Url { url } = &first.next else {
        panic!("{:?}", first.next)
    };
    assert!(!url.contains("abc-secret"), "{url}");

    assert_eq!(walk(&f).await, ((1..=7).collect(), 3));
    for req in server.requests() {
        assert_eq!(req.params("key"), vec!["abc-secret"], "{}", req.target);
        assert_eq!(req.params("fields"), vec!["id"], "{}", req.target);
        assert_eq!(req.path(), "/v1/items");
    }
}

#[tokio::test]
async fn walks_link_header() {
    let server = Server::start(|req, _| {
        let page = req.num("page").unwrap_or(1);
        let mut links = vec![format!(r#"</repos/x/issues?page=3>; rel="last""#)];
        if page < 3 {
            links.push(format!(
                r#"</repos/x/issues?page={}>; title="next, please"; rel="next nofollow""#,
                page + 1
            ));
        }
        if page > 1 {
            links.push(format!("</repos/x/issues?page={}>; rel=prev", page - 1));
        }
        Reply::json(200, json!(slice((page - 1) * 3, 3))).header("Link", &links.join(", "))
    })
    .await;
    let f = fetcher(json!({
        "url": server.url("/repos/x/issues"),
        "pagination": {"kind": "link_header"},
    }))
    .unwrap();
    assert_eq!(walk(&f).await, ((1..=7).collect(), 3));
    let pages = server.nums("page");
    assert_eq!(pages, vec![None, Some(2), Some(3)]);
}

#[tokio::test]
async fn next_url_pointing_at_itself_is_an_error() {
    let server = Server::start(|req, _| {
        Reply::json(
            200,
            json!({"items": [{"id": 1}], "next": req.target.clone()}),
        )
    })
    .await;
    let f = fetcher(json!({
        "url": server.url("/items"),
        "records": "$.items",
        "pagination": {"kind": "next_url", "next_url_path": "$.next"},
    }))
    .unwrap();
    let err = f.fetch(&Position::Start, 0, 0).await.unwrap_err();
    assert!(matches!(err, FetchError::Pagination { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::User);
}

// ---------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------

/// Collects every event's fields as `name=value` text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", field.name(), value));
            }
        }
        let mut fields = Fields(format!("{} ", event.metadata().level()));
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn retries_are_logged_without_secrets() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = Server::start(|_, i| {
        if i == 0 {
            Reply::text(503, "key lo9-s3cret rejected").header("Retry-After", "0")
        } else {
            Reply::json(200, json!([]))
        }
    })
    .await;
    let f = keyed_fetcher(server.url("/items"), "key", "lo9-s3cret", 3);
    let page = f.fetch(&Position::Start, 0, 0).await.unwrap();
    assert_eq!(page.attempts, 2);
    let lines = capture.0.lock().unwrap().clone();
    let retry: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("retrying http request"))
        .collect();
    assert_eq!(retry.len(), 1, "{lines:#?}");
    for needle in ["WARN", "attempt=1", "status=503", "wait_ms=0", "/items"] {
        assert!(retry[0].contains(needle), "{needle} missing: {}", retry[0]);
    }
    assert!(
        lines.iter().all(|l| !l.contains("lo9-s3cret")),
        "{lines:#?}"
    );
}
