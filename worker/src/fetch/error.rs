//! What can go wrong while fetching a page, and whose fault it is.
//!
//! Every URL in these errors is printed as `scheme://host[:port]/path` (no query string) and
//! every message has been scrubbed of the source's secrets, so errors can be logged and shown
//! to users as they are.

use std::time::Duration;

use apitap_common::error::ErrorClass;

/// A failed fetch. [`FetchError::class`] says whether retrying the shard can help.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source cannot be turned into requests (bad URL, header, JSON path, template).
    #[error("invalid http source: {message}")]
    Config { message: String },

    /// The position to fetch does not fit the pipeline's pagination kind (for example a
    /// checkpoint written before the pagination kind was changed).
    #[error("cannot fetch position {position} with pagination kind `{kind}`{hint}")]
    PositionMismatch {
        kind: &'static str,
        position: String,
        hint: &'static str,
    },

    /// `fetch` was called with [`Position::Done`](apitap_common::checkpoint::Position::Done).
    #[error("fetch called for a shard that is already done")]
    AlreadyDone,

    /// The server answered with a status that is not a success.
    #[error("GET {url}: HTTP {status}{}", body_suffix(.body))]
    Status {
        url: String,
        status: u16,
        /// The start of the response body, secrets removed.
        body: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },

    /// No (complete) response: connection refused or reset, DNS, TLS, timeout, a body cut
    /// short.
    #[error("GET {url}: {}{message}", if *.timeout { "timed out: " } else { "" })]
    Transport {
        url: String,
        message: String,
        timeout: bool,
    },

    /// The body is not valid JSON (usually a truncated body).
    #[error("GET {url}: response body ({bytes} bytes) is not valid JSON: {message}")]
    InvalidJson {
        url: String,
        bytes: u64,
        message: String,
    },

    /// The body is larger than the fetcher accepts (limit `max_body_bytes`).
    #[error(
        "GET {url}: response body is larger than the limit max_body_bytes of {limit} bytes; \
         ask for smaller pages (pagination.size) or raise spec.source.http.max_body_bytes"
    )]
    BodyTooLarge { url: String, limit: u64 },

    /// A next page link or a redirect leads to another origin (scheme, host, port) than the
    /// pipeline's URL, and the spec does not allow that (limit `follow.cross_origin`).
    #[error(
        "GET {url}: the {what} leads to {to}, another origin than {from}; set \
         spec.source.http.follow.cross_origin: true to follow it (credentials are never sent \
         to another origin)"
    )]
    CrossOrigin {
        url: String,
        /// `next page link` or `redirect`.
        what: &'static str,
        from: String,
        to: String,
    },

    /// A redirect that is never followed: a downgrade to http, another scheme, too many.
    #[error("GET {url}: {message}")]
    Redirect { url: String, message: String },

    /// The URL, a next link or a redirect leads to an address of the egress deny-list
    /// (limit `egress_deny`).
    #[error("GET {url}: {message}")]
    Egress { url: String, message: String },

    /// The OAuth2 token endpoint gave no usable token (unreachable, an error status, a
    /// malformed or oversized response).
    #[error("POST {url}: oauth2 token request: {message}")]
    Token {
        url: String,
        message: String,
        /// Worth retrying: no response, 408, 429 or 5xx.
        transient: bool,
        /// The limit that refused the response, if one did.
        limit: Option<&'static str>,
    },

    /// The circuit breaker of the host stayed open longer than the shard may wait
    /// (`circuit_breaker.max_wait`), or the shard was asked to stop while it waited.
    #[error(
        "GET {url}: the circuit breaker for host {host} is open until {until} after repeated \
         failures (no response, timeouts or 5xx); {why}"
    )]
    CircuitOpen {
        url: String,
        host: String,
        /// RFC 3339, UTC.
        until: String,
        why: String,
    },

    /// The records path does not lead to an array of objects.
    #[error("GET {url}: {message}")]
    Records { url: String, message: String },

    /// The body's pagination data is unusable (cursor of a wrong type, bad next URL, a
    /// cursor that does not advance, ...).
    #[error("GET {url}: pagination: {message}")]
    Pagination { url: String, message: String },
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl FetchError {
    /// Who has to act: `User` for client errors and unusable bodies, `Transient` for
    /// network trouble, server errors and throttling.
    pub fn class(&self) -> ErrorClass {
        match self {
            FetchError::Config { .. }
            | FetchError::PositionMismatch { .. }
            | FetchError::BodyTooLarge { .. }
            | FetchError::CrossOrigin { .. }
            | FetchError::Redirect { .. }
            | FetchError::Egress { .. }
            | FetchError::Records { .. }
            | FetchError::Pagination { .. } => ErrorClass::User,
            FetchError::AlreadyDone => ErrorClass::Internal,
            FetchError::Token { transient, .. } => {
                if *transient {
                    ErrorClass::Transient
                } else {
                    ErrorClass::User
                }
            }
            FetchError::Status { status, .. } => {
                if is_retriable_status(*status) {
                    ErrorClass::Transient
                } else {
                    ErrorClass::User
                }
            }
            FetchError::Transport { .. }
            | FetchError::InvalidJson { .. }
            | FetchError::CircuitOpen { .. } => ErrorClass::Transient,
        }
    }

    /// Whether the fetcher retries this error itself (before giving up).
    pub fn is_retriable(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => is_retriable_status(*status),
            FetchError::Transport { .. } | FetchError::InvalidJson { .. } => true,
            FetchError::Token { transient, .. } => *transient,
            _ => false,
        }
    }

    /// The name of the limit this error enforces (docs/operations.md "Limits"), if any; a
    /// metric counts them.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            FetchError::BodyTooLarge { .. } => Some("max_body_bytes"),
            FetchError::CrossOrigin { .. } => Some("follow.cross_origin"),
            FetchError::Egress { .. } => Some("egress_deny"),
            FetchError::Token { limit, .. } => *limit,
            FetchError::CircuitOpen { .. } => Some("circuit_breaker.max_wait"),
            FetchError::Redirect { message, .. } if message.contains("max_redirects") => {
                Some("max_redirects")
            }
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Retry-After` (e.g. with a 429), for a cluster-wide back-off.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// 408, 429 and every 5xx are worth retrying.
pub(crate) fn is_retriable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}
