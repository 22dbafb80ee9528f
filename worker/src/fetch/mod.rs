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
//!
//! Credentials (auth, api key, custom headers) go to the pipeline URL's origin only. Next
//! links and redirects to another origin are errors unless the spec sets
//! `follow.cross_origin`, and then they are fetched without credentials.
//!
//! Errors and logs show URLs as `scheme://host/path` and never contain the source's secrets.

pub mod client;
pub mod egress;
mod error;
mod paginate;
mod redact;
mod request;
mod retry;

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

pub use egress::Egress;
pub use error::FetchError;
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
    /// `None` for 204 No Content.
    body: Option<Value>,
    bytes: u64,
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
        })
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
        })
    }

    /// One request: status, headers and a parsed body, or an error to classify.
    async fn attempt(&self, url: Url, shown: &str) -> Result<Response, FetchError> {
        if let Some(permit) = &self.permit {
            permit().await;
        }
        let mut resp = self
            .request
            .build(&self.client, url)
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
                .build(&self.client, target)
                .send()
                .await
                .map_err(|e| self.transport_error(shown, e))?;
        }
        let status = resp.status();
        let headers = resp.headers();
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

    /// The whole body, refusing more than `max_body_bytes`: an announced `Content-Length`
    /// above the limit is refused before any byte is read, and a body without one is counted
    /// as it arrives, so no more than the limit is ever buffered.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        shown: &str,
    ) -> Result<Vec<u8>, FetchError> {
        let limit = self.max_body_bytes;
        let too_large = |announced: bool| {
            tracing::warn!(url = %shown, limit_bytes = limit, announced, "limit max_body_bytes: response body refused");
            FetchError::BodyTooLarge {
                url: shown.to_string(),
                limit,
            }
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large(true));
        }
        // Trust the announced length only so far.
        let capacity = resp.content_length().unwrap_or(0).min(limit).min(8 << 20);
        let mut buf = Vec::with_capacity(capacity as usize);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.transport_error(shown, e))?
        {
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(too_large(false));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
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
