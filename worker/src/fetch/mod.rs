//! Fetching a shard's pages from an HTTP API.
//!
//! A [`Fetcher`] is built once per shard from the pipeline's `source.http` (secrets already
//! substituted) and the shard's template variables. [`Fetcher::fetch`] requests the page at a
//! checkpoint [`Position`] — with retries on network errors, timeouts, 408, 429, 5xx and
//! unparseable bodies — and returns the page's records with the position of the next page
//! ([`Position::Done`] once a stop condition holds).
//!
//! - [`request`]: URL, query, headers and auth for a position; secret scrubbing.
//! - [`paginate`]: records, next position and stop conditions (pure).
//! - [`retry`]: the retry loop and `Retry-After`.
//! - [`client`]: the worker's HTTP client, its redirect policy and DNS resolver.
//! - [`egress`]: the deny-list of addresses no pipeline may reach.
//! - [`oauth2`]: client-credentials tokens, cached per worker and pipeline.
//! - [`body`]: reading a body within a byte limit.
//! - [`breaker`]: circuit breakers per upstream host, shared by the worker's shards.
//! - [`breaker_wait`]: what a shard waits on, for the agent's heartbeat.
//! - [`conditional`]: `ETag` / `Last-Modified` of full refreshes, `304 Not Modified`.
//!
//! Credentials (auth, api key, custom headers) go to the pipeline URL's origin only. Next
//! links and redirects to another origin are errors unless the spec sets
//! `follow.cross_origin`, and then they are fetched without credentials.
//!
//! Errors and logs show URLs as `scheme://host/path` and never contain the source's secrets.

mod body;
pub mod breaker;
pub mod breaker_wait;
pub mod client;
pub mod conditional;
pub mod egress;
mod error;
pub mod oauth2;
mod paginate;
mod redact;
mod request;
mod retry;

#[cfg(test)]
mod breaker_tests;
#[cfg(test)]
mod conditional_tests;
#[cfg(test)]
mod oauth2_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_tests;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use apitap_common::checkpoint::Position;
use apitap_common::jsonpath::JsonPath;
use apitap_common::limits::MAX_REDIRECTS;
use apitap_common::spec::HttpSource;
use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::header::{LINK, LOCATION, RETRY_AFTER};
use serde_json::Value;
use url::Url;

pub use breaker::Breakers;
pub use egress::Egress;
pub use error::FetchError;
pub use oauth2::TokenCache;
pub use paginate::{next_link, parse_link_header, Link};
pub use retry::{RetryEvent, MAX_RETRY_AFTER};

use paginate::{PageView, Paginator};
use request::RequestTemplate;
use retry::{RetryObserver, RetryPolicy};

pub use apitap_common::limits::DEFAULT_MAX_BODY_BYTES;

/// How much of an error response's body is quoted in [`FetchError::Status`].
const ERROR_BODY_CHARS: usize = 300;

type PermitFn = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// One fetched page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records, each a JSON object.
    pub records: Vec<Value>,
    /// Where the next page is; [`Position::Done`] when the shard is complete.
    pub next: Position,
    /// Size of the response body.
    pub bytes: u64,
    /// HTTP status of the successful response.
    pub status: u16,
    /// Requests made for this page (1 = no retry).
    pub attempts: u32,
    /// With `conditional`: the response's validators (JSON), kept with the checkpoint for
    /// the next run. On a 304 (`status`), the ones sent.
    pub validators: Option<String>,
}

/// Fetches the pages of one shard. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    request: RequestTemplate,
    records: JsonPath,
    paginator: Paginator,
    retry: RetryPolicy,
    max_body_bytes: u64,
    /// `follow.cross_origin` of the spec.
    cross_origin: bool,
    egress: Arc<Egress>,
    observer: Option<RetryObserver>,
    permit: Option<PermitFn>,
    /// `auth.oauth2`: where the bearer token comes from.
    oauth2: Option<oauth2::OAuth2>,
    /// The worker's circuit breakers (a private set until [`Fetcher::with_breakers`]).
    breakers: Arc<Breakers>,
    /// `circuit_breaker` of the spec.
    breaker: apitap_common::spec::CircuitBreaker,
    /// Set when the shard should stop: ends a wait on an open breaker early.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Where a wait on an open breaker is shown to the agent (for the heartbeat).
    waiting: Option<Arc<breaker_wait::WaitSlot>>,
    /// `conditional` of the spec (with `pagination.kind: none`).
    conditional: bool,
    /// The validators of the shard's last run, sent as `If-None-Match` / `If-Modified-Since`.
    validators: Option<conditional::Validators>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("url", &self.request.redactor.url(&self.request.base))
            .field("pagination", &self.paginator.kind.as_str())
            .field("records", &self.records.as_str())
            .field("max_attempts", &self.retry.max_attempts)
            .finish_non_exhaustive()
    }
}

/// A successful response, before its body is interpreted.
struct Response {
    status: u16,
    link: Option<String>,
    /// `None` for 204 No Content and 304 Not Modified.
    body: Option<Value>,
    bytes: u64,
    validators: Option<conditional::Validators>,
}

impl Fetcher {
    /// `client` is shared by the whole worker; `vars` are the shard's template variables.
    /// Fails (a user error) when the source cannot be turned into requests: a template
    /// variable without a value, an invalid URL, header or JSON path.
    pub fn new(
        client: reqwest::Client,
        source: &HttpSource,
        vars: &BTreeMap<String, String>,
    ) -> Result<Self, FetchError> {
        let request = RequestTemplate::new(source, vars)?;
        let records_text = source.records.as_deref().unwrap_or("$");
        let records = JsonPath::parse(records_text).map_err(|e| FetchError::Config {
            message: format!("records: {e}"),
        })?;
        let paginator =
            Paginator::new(&source.pagination).map_err(|message| FetchError::Config { message })?;
        let oauth2 = match source.auth.as_ref().and_then(|a| a.oauth2.as_ref()) {
            Some(o) => Some(oauth2::OAuth2::new(o, source.timeout, &request.redactor)?),
            None => None,
        };
        Ok(Self {
            client,
            request,
            records,
            paginator,
            retry: RetryPolicy::new(&source.retry),
            max_body_bytes: source.max_body_bytes(),
            cross_origin: source.follow.cross_origin,
            egress: Arc::new(Egress::default()),
            observer: None,
            permit: None,
            oauth2,
            breakers: Arc::default(),
            breaker: source.circuit_breaker.clone(),
            stop: None,
            waiting: None,
            conditional: source.conditional
                && source.pagination.kind == apitap_common::spec::PaginationKind::None,
            validators: source
                .conditional
                .then(|| conditional::Validators::from_vars(vars))
                .flatten(),
        })
    }

    /// Shares `breakers` (the worker's, one per upstream host) with the other fetchers.
    pub fn with_breakers(mut self, breakers: Arc<Breakers>) -> Self {
        self.breakers = breakers;
        self
    }

    /// Shows a wait on an open circuit breaker in `slot` while it lasts.
    pub fn with_wait_slot(mut self, slot: Arc<breaker_wait::WaitSlot>) -> Self {
        self.waiting = Some(slot);
        self
    }

    /// Ends a wait on an open circuit breaker as soon as `stop` turns true (drain).
    pub fn with_stop(mut self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Takes OAuth2 tokens from the worker's `cache`, shared with the other shards of
    /// `pipeline` (a private cache otherwise).
    pub fn with_token_cache(mut self, cache: &TokenCache, pipeline: &str) -> Self {
        self.oauth2 = self.oauth2.take().map(|o| o.share(cache, pipeline));
        self
    }

    /// Calls `observer` (after any observer added before) before every retry wait, e.g. to
    /// report a 429's `Retry-After` as a cluster-wide back-off.
    pub fn on_retry(mut self, observer: impl Fn(&RetryEvent) + Send + Sync + 'static) -> Self {
        self.observer = Some(match self.observer.take() {
            None => Arc::new(observer),
            Some(first) => Arc::new(move |e: &RetryEvent| {
                first(e);
                observer(e);
            }),
        });
        self
    }

    /// Awaits `permit()` before every request (including retries), e.g. a rate-limit token.
    pub fn with_permit<F, Fut>(mut self, permit: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.permit = Some(Arc::new(move || permit().boxed()));
        self
    }

    /// Bodies larger than `limit` bytes fail with [`FetchError::BodyTooLarge`] (the spec's
    /// `max_body_bytes` otherwise).
    pub fn with_max_body_bytes(mut self, limit: u64) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Checks every URL against `egress` (the worker's deny-list; the default one otherwise).
    /// The client should be built with the same ([`client::build`]).
    pub fn with_egress(mut self, egress: Arc<Egress>) -> Self {
        self.egress = egress;
        self
    }

    /// The URL that [`fetch`](Self::fetch) requests for `position` (secrets included: do not
    /// log it).
    pub fn url_for(&self, position: &Position) -> Result<Url, FetchError> {
        self.request.url_for(position)
    }

    /// Fetches the page at `position` (with retries) and says where the next page is.
    /// `pages_done`/`records_done` are what the shard already committed before this page
    /// (for the `max_pages` and `total_path` stop conditions).
    pub async fn fetch(
        &self,
        position: &Position,
        pages_done: u64,
        records_done: u64,
    ) -> Result<Page, FetchError> {
        if let Some(o) = &self.oauth2 {
            // A stored position may name the token; it resolves to the current one.
            let ctx = self.token_ctx();
            retry::run(&self.retry, &o.shown, None, |_| o.token(&ctx)).await?;
        }
        let url = self.request.url_for(position)?;
        let shown = self.request.redactor.url(&url);
        self.check_egress(&url, &shown)?;
        let (response, attempts) = retry::run(&self.retry, &shown, self.observer.as_ref(), |_| {
            self.attempt(url.clone(), &shown)
        })
        .await?;

        let Some(mut body) = response.body else {
            return Ok(Page {
                records: Vec::new(),
                next: Position::Done,
                bytes: response.bytes,
                status: response.status,
                attempts,
                validators: response.validators.map(|v| v.to_json()),
            });
        };
        let records_error = |m: String| FetchError::Records {
            url: shown.clone(),
            message: self.request.redactor.scrub(&m),
        };
        let pagination_error = |m: String| FetchError::Pagination {
            url: shown.clone(),
            message: self.request.redactor.scrub(&m),
        };
        // The paginator reads the whole body (records included, e.g. `$.data[-1].id`)
        // before the records are taken out of it.
        let view = paginate::records_view(&self.records, &body).map_err(records_error)?;
        let next = self
            .paginator
            .next(&PageView {
                position,
                url: &url,
                body: &body,
                last: view.last(),
                link: response.link.as_deref(),
                count: view.len() as u64,
                pages_done,
                records_done,
            })
            .map_err(pagination_error)?;
        let records = paginate::extract_records(&self.records, &mut body).map_err(records_error)?;
        let next = match next {
            Position::Url { url: next_url } => {
                let parsed = Url::parse(&next_url).map_err(|e| {
                    pagination_error(format!("next page URL is not a valid URL: {e}"))
                })?;
                if !self.request.same_origin(&parsed) {
                    tracing::warn!(url = %shown, to = %parsed.origin().ascii_serialization(), allowed = self.cross_origin, "next page link to another origin");
                    if !self.cross_origin {
                        return Err(FetchError::CrossOrigin {
                            url: shown.clone(),
                            what: "next page link",
                            from: self.request.base.origin().ascii_serialization(),
                            to: parsed.origin().ascii_serialization(),
                        });
                    }
                }
                self.check_egress(&parsed, &shown)?;
                let next = Position::Url {
                    url: self
                        .request
                        .redactor
                        .mask(self.request.without_api_key(parsed).as_str()),
                };
                if self.request.url_for(&next)? == url {
                    return Err(pagination_error(
                        "the next page URL is the URL just fetched; the next page would repeat this one"
                            .to_string(),
                    ));
                }
                next
            }
            Position::Cursor { cursor } => Position::Cursor {
                cursor: self.request.redactor.mask(&cursor),
            },
            other => other,
        };
        Ok(Page {
            records,
            next,
            bytes: response.bytes,
            status: response.status,
            attempts,
            validators: response.validators.map(|v| v.to_json()),
        })
    }

    fn token_ctx(&self) -> oauth2::Ctx<'_> {
        oauth2::Ctx {
            client: &self.client,
            egress: &self.egress,
            redactor: &self.request.redactor,
        }
    }

    /// One request through the host's circuit breaker: waits while it is open, then tells
    /// it what the answer says about the host.
    async fn attempt(&self, url: Url, shown: &str) -> Result<Response, FetchError> {
        let ticket = breaker::pass(
            &self.breakers,
            &self.breaker,
            &url,
            shown,
            self.stop.clone(),
            self.waiting.as_deref(),
        )
        .await?;
        let result = self.attempt_once(url, shown).await;
        ticket.record(match &result {
            Ok(r) => breaker::Verdict::of(&Ok(r.status)),
            Err(FetchError::Status { status, .. }) => breaker::Verdict::of(&Ok(*status)),
            Err(e) => breaker::Verdict::of(&Err(e)),
        });
        result
    }

    /// One request: status, headers and a parsed body, or an error to classify. With
    /// OAuth2, a 401 renews the token and repeats the request once; a second 401 is the
    /// answer.
    async fn attempt_once(&self, url: Url, shown: &str) -> Result<Response, FetchError> {
        if let Some(permit) = &self.permit {
            permit().await;
        }
        let token = match &self.oauth2 {
            Some(o) => Some(o.token(&self.token_ctx()).await?),
            None => None,
        };
        let resp = self.send(url.clone(), token.as_deref(), shown).await?;
        let (Some(o), Some(used)) = (&self.oauth2, token) else {
            return self.read_response(resp, shown).await;
        };
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED
            || !self.request.same_origin(resp.url())
        {
            return self.read_response(resp, shown).await;
        }
        drop(resp);
        tracing::info!(url = %shown, "source refused the oauth2 token (401); renewing it and retrying once");
        let fresh = o.renew(&used, &self.token_ctx()).await?;
        if let Some(permit) = &self.permit {
            permit().await;
        }
        let resp = self.send(url, Some(&fresh), shown).await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            let body = self.error_body(resp).await;
            return Err(FetchError::Status {
                url: shown.to_string(),
                status: 401,
                body: format!(
                    "refused a freshly issued OAuth2 token too; check the client's scopes and                      audience (spec.source.http.auth.oauth2){}",
                    if body.is_empty() { String::new() } else { format!(": {body}") }
                ),
                retry_after: None,
            });
        }
        self.read_response(resp, shown).await
    }

    /// Sends the request for `url`, following redirects to other origins where allowed.
    async fn send(
        &self,
        url: Url,
        bearer: Option<&str>,
        shown: &str,
    ) -> Result<reqwest::Response, FetchError> {
        let mut req = self.request.build(&self.client, url, bearer);
        if let Some(v) = &self.validators {
            req = req.headers(v.request_headers());
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(shown, e))?;
        // The client follows redirects within an origin and hands back the others.
        let mut hops = 0;
        while let Some(target) = self.cross_origin_redirect(&resp, shown)? {
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(FetchError::Redirect {
                    url: shown.to_string(),
                    message: format!(
                        "more than the limit max_redirects of {MAX_REDIRECTS} redirects"
                    ),
                });
            }
            resp = self
                .request
                .build(&self.client, target, bearer)
                .send()
                .await
                .map_err(|e| self.transport_error(shown, e))?;
        }
        Ok(resp)
    }

    /// Status, `Link` and the parsed body of a response, or the error its status means.
    async fn read_response(
        &self,
        resp: reqwest::Response,
        shown: &str,
    ) -> Result<Response, FetchError> {
        let status = resp.status();
        let headers = resp.headers();
        if status == reqwest::StatusCode::NOT_MODIFIED && self.validators.is_some() {
            tracing::info!(url = %shown, "not modified since the last run (HTTP 304): nothing to load");
            return Ok(Response {
                status: status.as_u16(),
                link: None,
                body: None,
                bytes: 0,
                validators: conditional::Validators::from_headers(headers)
                    .or_else(|| self.validators.clone()),
            });
        }
        let validators = self
            .conditional
            .then(|| conditional::Validators::from_headers(headers))
            .flatten();
        let link = {
            let values: Vec<&str> = headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        if !status.is_success() {
            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
            let body = self.error_body(resp).await;
            return Err(FetchError::Status {
                url: shown.to_string(),
                status: status.as_u16(),
                body,
                retry_after,
            });
        }
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Response {
                status: status.as_u16(),
                link,
                body: None,
                bytes: 0,
                validators,
            });
        }
        let bytes = self.read_body(resp, shown).await?;
        let body =
            serde_json::from_slice::<Value>(&bytes).map_err(|e| FetchError::InvalidJson {
                url: shown.to_string(),
                bytes: bytes.len() as u64,
                message: self.request.redactor.scrub(&e.to_string()),
            })?;
        Ok(Response {
            status: status.as_u16(),
            link,
            body: Some(body),
            bytes: bytes.len() as u64,
            validators,
        })
    }

    /// The target of a redirect to another origin than the one of `resp`'s request, if it
    /// may be followed (`follow.cross_origin`, no downgrade, not denied); an error if not.
    fn cross_origin_redirect(
        &self,
        resp: &reqwest::Response,
        shown: &str,
    ) -> Result<Option<Url>, FetchError> {
        if !resp.status().is_redirection() {
            return Ok(None);
        }
        let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
            return Ok(None);
        };
        let Ok(target) = resp.url().join(location) else {
            return Ok(None);
        };
        let redirect_error = |message: &str| FetchError::Redirect {
            url: shown.to_string(),
            message: message.to_string(),
        };
        if !matches!(target.scheme(), "http" | "https") {
            return Err(redirect_error(
                "redirect to a scheme other than http or https; refusing to follow it",
            ));
        }
        if resp.url().scheme() == "https" && target.scheme() == "http" {
            return Err(redirect_error(
                "redirect downgrades from https to http; refusing to follow it",
            ));
        }
        let (from, to) = (
            resp.url().origin().ascii_serialization(),
            target.origin().ascii_serialization(),
        );
        tracing::warn!(url = %shown, from = %from, to = %to, allowed = self.cross_origin, "redirect to another origin");
        if !self.cross_origin {
            return Err(FetchError::CrossOrigin {
                url: shown.to_string(),
                what: "redirect",
                from,
                to,
            });
        }
        self.check_egress(&target, shown)?;
        Ok(Some(target))
    }

    fn check_egress(&self, url: &Url, shown: &str) -> Result<(), FetchError> {
        self.egress.check_url(url).map_err(|denied| {
            tracing::warn!(url = %shown, target = %denied.target, "limit egress_deny: request refused");
            FetchError::Egress {
                url: shown.to_string(),
                message: denied.to_string(),
            }
        })
    }

    /// The whole body, refusing more than `max_body_bytes` ([`body::read_capped`]).
    async fn read_body(&self, resp: reqwest::Response, shown: &str) -> Result<Vec<u8>, FetchError> {
        let limit = self.max_body_bytes;
        body::read_capped(resp, limit).await.map_err(|e| match e {
            body::BodyError::TooLarge { announced } => {
                tracing::warn!(url = %shown, limit_bytes = limit, announced, "limit max_body_bytes: response body refused");
                FetchError::BodyTooLarge {
                    url: shown.to_string(),
                    limit,
                }
            }
            body::BodyError::Transport(e) => self.transport_error(shown, e),
        })
    }

    /// The start of an error response's body, on one line, secrets removed; best effort.
    async fn error_body(&self, mut resp: reqwest::Response) -> String {
        let mut buf = Vec::new();
        while buf.len() < ERROR_BODY_CHARS * 4 {
            match resp.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let text = String::from_utf8_lossy(&buf);
        let mut one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > ERROR_BODY_CHARS {
            one_line = one_line.chars().take(ERROR_BODY_CHARS).collect::<String>() + "...";
        }
        self.request.redactor.scrub(&one_line)
    }

    fn transport_error(&self, shown: &str, e: reqwest::Error) -> FetchError {
        let timeout = e.is_timeout();
        let redirect = e.is_redirect();
        let mut denied = None;
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            if let Some(d) = c.downcast_ref::<egress::Denied>() {
                denied = Some(d.clone());
            }
            cause = c.source();
        }
        if let Some(d) = denied {
            return FetchError::Egress {
                url: shown.to_string(),
                message: self.request.redactor.scrub(&d.to_string()),
            };
        }
        // reqwest's message carries the full URL (with query secrets): drop it.
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        if redirect {
            // Refused by the client's redirect policy: following again will not help.
            return FetchError::Redirect {
                url: shown.to_string(),
                message: self.request.redactor.scrub(&message),
            };
        }
        FetchError::Transport {
            url: shown.to_string(),
            message: self.request.redactor.scrub(&message),
            timeout,
        }
    }
}
