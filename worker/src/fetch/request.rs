//! Turning an [`HttpSource`] and a [`Position`] into a request: template rendering, the URL
//! with its query parameters, headers and auth.

use std::collections::BTreeMap;
use std::time::Duration;

use apitap_common::checkpoint::Position;
use apitap_common::spec::template;
use apitap_common::spec::{ApiKeyLocation, HttpSource, Pagination, PaginationKind};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use url::Url;

use super::error::FetchError;
pub(crate) use super::redact::Redactor;

/// Header and query names whose values are treated as secrets.
const SENSITIVE_NAME_PARTS: &[&str] = &[
    "auth",
    "token",
    "key",
    "secret",
    "pass",
    "session",
    "cookie",
    "signature",
    "credential",
];

fn is_sensitive_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SENSITIVE_NAME_PARTS.iter().any(|p| name.contains(p))
}

/// Everything about a request that does not change from page to page. No `Debug`: it holds
/// secrets.
#[derive(Clone)]
pub(crate) struct RequestTemplate {
    /// The rendered `url`.
    pub(crate) base: Url,
    /// The rendered static `query`.
    query: Vec<(String, String)>,
    /// Rendered `headers`, bearer or api-key header, `Accept`.
    headers: HeaderMap,
    basic: Option<(String, String)>,
    api_key_query: Option<(String, String)>,
    timeout: Duration,
    pagination: Pagination,
    pub(crate) redactor: Redactor,
}

impl RequestTemplate {
    pub(crate) fn new(
        source: &HttpSource,
        vars: &BTreeMap<String, String>,
    ) -> Result<Self, FetchError> {
        let redactor = Redactor::new(secret_values(source));
        let render = |what: &str, text: &str| {
            template::render(text, vars).map_err(|e| FetchError::Config {
                message: format!("{what}: {}", redactor.scrub(&e)),
            })
        };

        let url_text = template::render_url(&source.url, vars).map_err(|e| FetchError::Config {
            message: format!("url: {}", redactor.scrub(&e)),
        })?;
        let base = Url::parse(&url_text).map_err(|e| FetchError::Config {
            message: format!("url is not a valid absolute URL: {e}"),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(FetchError::Config {
                message: format!(
                    "url must use http or https, not `{}`",
                    redactor.scrub(base.scheme())
                ),
            });
        }

        let mut query = Vec::with_capacity(source.query.len());
        for (k, v) in &source.query {
            query.push((k.clone(), render(&format!("query `{k}`"), v)?));
        }

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (k, v) in &source.headers {
            let value = render(&format!("header `{k}`"), v)?;
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| FetchError::Config {
                message: format!("header name {k:?} is not a valid HTTP header name"),
            })?;
            headers.insert(name, header_value(&format!("header `{k}`"), &value)?);
        }

        let mut basic = None;
        let mut api_key_query = None;
        if let Some(auth) = &source.auth {
            if let Some(token) = &auth.bearer {
                headers.insert(
                    AUTHORIZATION,
                    header_value("auth.bearer", &format!("Bearer {token}"))?,
                );
            }
            if let Some(b) = &auth.basic {
                basic = Some((b.username.clone(), b.password.clone()));
            }
            if let Some(key) = &auth.api_key {
                match key.location {
                    ApiKeyLocation::Header => {
                        let name = HeaderName::from_bytes(key.name.as_bytes()).map_err(|_| {
                            FetchError::Config {
                                message: format!(
                                    "auth.api_key.name {:?} is not a valid HTTP header name",
                                    key.name
                                ),
                            }
                        })?;
                        headers.insert(name, header_value("auth.api_key.value", &key.value)?);
                    }
                    ApiKeyLocation::Query => {
                        api_key_query = Some((key.name.clone(), key.value.clone()));
                    }
                }
            }
        }

        Ok(Self {
            base,
            query,
            headers,
            basic,
            api_key_query,
            timeout: source.timeout,
            pagination: source.pagination.clone(),
            redactor,
        })
    }

    /// The URL that fetches `position`.
    pub(crate) fn url_for(&self, position: &Position) -> Result<Url, FetchError> {
        let p = &self.pagination;
        let mismatch = |hint: &'static str| FetchError::PositionMismatch {
            kind: p.kind.as_str(),
            position: describe_position(position, &self.redactor),
            hint,
        };
        let mut url = match (p.kind, position) {
            (_, Position::Done) => return Err(FetchError::AlreadyDone),
            (_, Position::Url { url }) => {
                if !matches!(p.kind, PaginationKind::NextUrl | PaginationKind::LinkHeader) {
                    return Err(mismatch(CHANGED_HINT));
                }
                let url = self.redactor.unmask(url)?;
                let mut url = Url::parse(&url).map_err(|e| FetchError::Pagination {
                    url: "checkpoint".to_string(),
                    message: format!("stored next URL is not a valid URL: {e}"),
                })?;
                if !self.same_origin(&url) {
                    // The static query and the api key belong to the pipeline's origin.
                    return Ok(url);
                }
                for (k, v) in &self.query {
                    if !url.query_pairs().any(|(name, _)| name == k.as_str()) {
                        url.query_pairs_mut().append_pair(k, v);
                    }
                }
                self.add_api_key(&mut url);
                return Ok(url);
            }
            (_, Position::Start) => self.base_with_query(),
            (PaginationKind::LimitOffset, Position::Offset { .. })
            | (PaginationKind::PageNumber, Position::Page { .. })
            | (PaginationKind::Cursor, Position::Cursor { .. }) => self.base_with_query(),
            _ => return Err(mismatch(CHANGED_HINT)),
        };
        let size = p.size().to_string();
        match (p.kind, position) {
            (PaginationKind::LimitOffset, _) => {
                let offset = match position {
                    Position::Offset { offset } => *offset,
                    _ => 0,
                };
                set_param(&mut url, p.limit_param(), &size);
                set_param(&mut url, p.offset_param(), &offset.to_string());
            }
            (PaginationKind::PageNumber, _) => {
                let page = match position {
                    Position::Page { page } => *page,
                    _ => p.start_page(),
                };
                set_param(&mut url, p.page_param(), &page.to_string());
                set_param(&mut url, p.size_param(), &size);
            }
            (PaginationKind::Cursor, _) => {
                if let Position::Cursor { cursor } = position {
                    set_param(&mut url, p.cursor_param(), &self.redactor.unmask(cursor)?);
                }
                set_param(&mut url, p.size_param(), &size);
            }
            (PaginationKind::None | PaginationKind::NextUrl | PaginationKind::LinkHeader, _) => {}
        }
        self.add_api_key(&mut url);
        Ok(url)
    }

    /// The rendered URL plus the static query.
    fn base_with_query(&self) -> Url {
        let mut url = self.base.clone();
        for (k, v) in &self.query {
            set_param(&mut url, k, v);
        }
        url
    }

    /// Puts the query api key in `url` exactly once.
    fn add_api_key(&self, url: &mut Url) {
        if let Some((k, v)) = &self.api_key_query {
            let present: Vec<_> = url.query_pairs().filter(|(name, _)| name == k).collect();
            if matches!(present.as_slice(), [(_, only)] if only == v.as_str()) {
                return;
            }
            set_param(url, k, v);
        }
    }

    /// `url` without the query api key: what may be stored in a checkpoint.
    pub(crate) fn without_api_key(&self, mut url: Url) -> Url {
        if let Some((k, _)) = &self.api_key_query {
            remove_param(&mut url, k);
        }
        url
    }

    /// Whether `url` has the origin (scheme, host, port) of the pipeline's URL: only there
    /// are credentials sent.
    pub(crate) fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// The request for `url`: with the headers and auth of the source on the pipeline's
    /// origin, with `Accept` and the timeout only anywhere else.
    /// `bearer` is an OAuth2 access token, sent like the other credentials.
    pub(crate) fn build(
        &self,
        client: &reqwest::Client,
        url: Url,
        bearer: Option<&str>,
    ) -> reqwest::RequestBuilder {
        if !self.same_origin(&url) {
            return client
                .get(url)
                .header(ACCEPT, HeaderValue::from_static("application/json"))
                .timeout(self.timeout);
        }
        let mut req = client
            .get(url)
            .headers(self.headers.clone())
            .timeout(self.timeout);
        if let Some((user, password)) = &self.basic {
            req = req.basic_auth(user, Some(password));
        }
        if let Some(token) = bearer {
            // The token was checked to fit a header when it was received.
            if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                v.set_sensitive(true);
                req = req.header(AUTHORIZATION, v);
            }
        }
        req
    }
}

const CHANGED_HINT: &str =
    " (was the pipeline's pagination changed while a checkpoint was kept? reset the shard)";

fn header_value(what: &str, value: &str) -> Result<HeaderValue, FetchError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| FetchError::Config {
        message: format!("{what} is not a valid HTTP header value (control characters?)"),
    })?;
    // Keeps the value out of `Debug` output.
    v.set_sensitive(true);
    Ok(v)
}

/// Every value of the source that must not appear in errors or logs.
fn secret_values(source: &HttpSource) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(auth) = &source.auth {
        if let Some(t) = &auth.bearer {
            out.push(t.clone());
        }
        if let Some(b) = &auth.basic {
            out.push(b.username.clone());
            out.push(b.password.clone());
        }
        if let Some(k) = &auth.api_key {
            out.push(k.value.clone());
        }
        if let Some(o) = &auth.oauth2 {
            out.push(o.client_secret.clone());
        }
    }
    for (k, v) in source.headers.iter().chain(source.query.iter()) {
        if is_sensitive_name(k) {
            out.push(v.clone());
        }
    }
    out
}

/// Sets `name=value`, replacing any pair with that name; leaves the rest of the query alone.
pub(crate) fn set_param(url: &mut Url, name: &str, value: &str) {
    remove_param(url, name);
    url.query_pairs_mut().append_pair(name, value);
}

/// Removes every pair named `name` (the query is re-encoded only if there was one).
pub(crate) fn remove_param(url: &mut Url, name: &str) {
    if !url.query_pairs().any(|(k, _)| k == name) {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

fn describe_position(position: &Position, redactor: &Redactor) -> String {
    match position {
        Position::Start => "start".to_string(),
        Position::Offset { offset } => format!("offset {offset}"),
        Position::Page { page } => format!("page {page}"),
        Position::Cursor { cursor } => format!("cursor {cursor:?}"),
        // The stored URL may hold secrets from an older version; show only its path.
        Position::Url { url } => match Url::parse(url) {
            Ok(u) => format!("url {}", redactor.url(&u)),
            Err(_) => "url (invalid)".to_string(),
        },
        Position::Done => "done".to_string(),
    }
}
