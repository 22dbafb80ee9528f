//! Rules of the connector settings of `spec.source.http`: `auth.oauth2` and
//! `circuit_breaker` (docs/pipeline-reference.md lists each rule with its message).

use super::parse::Problem;
use super::types::{CircuitBreaker, OAuth2Auth, PaginationKind, Pipeline};
use crate::limits::{
    check_bytes, check_count, Limits, MAX_BREAKER_FAILURES, MAX_BREAKER_OPEN_FOR, MAX_BREAKER_WAIT,
    MAX_TOKEN_RESPONSE_BYTES_CEILING, MIN_BREAKER_OPEN_FOR,
};

const OAUTH2: &str = "spec.source.http.auth.oauth2";
const BREAKER: &str = "spec.source.http.circuit_breaker";

/// Most scopes one token request asks for.
pub const MAX_SCOPES: usize = 32;

/// `auth.oauth2`; `probe` is the `token_url` with secrets and templates replaced by
/// placeholders (`None` when a secret whose value is unknown starts it).
pub(crate) fn oauth2(
    o: &OAuth2Auth,
    probe: Option<String>,
    limits: &Limits,
    out: &mut Vec<Problem>,
) {
    token_url(o, probe, limits, out);
    if o.client_id.trim().is_empty() {
        out.push(
            Problem::new(format!("{OAUTH2}.client_id"), "must not be empty")
                .hint("the client id the API's authorization server issued"),
        );
    }
    if !o.client_secret.contains("${") {
        out.push(
            Problem::new(
                format!("{OAUTH2}.client_secret"),
                "must be a secret reference, not the secret itself",
            )
            .hint("write client_secret: \"${CLIENT_SECRET}\" and export CLIENT_SECRET=... before apitapctl submit"),
        );
    }
    if let Err(e) = check_count(
        "max_scopes",
        "scopes",
        o.scopes.len(),
        MAX_SCOPES,
        "ask for fewer scopes",
    ) {
        out.push(Problem::new(format!("{OAUTH2}.scopes"), e.message()).hint(e.fix));
    }
    for (i, scope) in o.scopes.iter().enumerate() {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            out.push(
                Problem::new(
                    format!("{OAUTH2}.scopes[{i}]"),
                    format!("{scope:?} is not one OAuth2 scope (no spaces, quotes or backslashes; not empty)"),
                )
                .hint("list each scope on its own: scopes: [read:items, read:users]"),
            );
        }
    }
    if o.audience.as_deref().is_some_and(|a| a.trim().is_empty()) {
        out.push(
            Problem::new(format!("{OAUTH2}.audience"), "must not be empty")
                .hint("leave it out when the API needs none"),
        );
    }
    params(o, limits, out);
    match o.max_response_bytes {
        Some(0) => out.push(
            Problem::new(format!("{OAUTH2}.max_response_bytes"), "must be at least 1")
                .hint("leave it out for the default"),
        ),
        Some(v) if v > MAX_TOKEN_RESPONSE_BYTES_CEILING => out.push(
            Problem::new(
                format!("{OAUTH2}.max_response_bytes"),
                format!(
                    "{v} bytes is above the ceiling of {MAX_TOKEN_RESPONSE_BYTES_CEILING} bytes"
                ),
            )
            .hint("leave it out for the default, or choose a smaller value"),
        ),
        _ => {}
    }
}

fn token_url(o: &OAuth2Auth, probe: Option<String>, limits: &Limits, out: &mut Vec<Problem>) {
    let path = format!("{OAUTH2}.token_url");
    if let Err(e) = check_bytes(
        "max_url_bytes",
        "the URL",
        o.token_url.len(),
        limits.max_url_bytes,
        "shorten the URL",
    ) {
        out.push(Problem::new(path.clone(), e.message()).hint(e.fix));
    }
    let Some(probe) = probe else { return };
    match url::Url::parse(&probe) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            if u.host_str().is_none_or(str::is_empty) {
                out.push(Problem::new(path, "the URL has no host"));
            } else if u.fragment().is_some() {
                out.push(Problem::new(path, "a token URL has no fragment (#...)"));
            }
        }
        Ok(u) => out.push(
            Problem::new(path, format!("unsupported URL scheme {:?}", u.scheme())).hint("use https:// (or http:// on a trusted network)"),
        ),
        Err(e) => out.push(
            Problem::new(path, format!("invalid URL {:?}: {e}", o.token_url))
                .hint("write the full URL of the token endpoint, e.g. https://auth.example.com/oauth/token"),
        ),
    }
}

fn params(o: &OAuth2Auth, limits: &Limits, out: &mut Vec<Problem>) {
    let path = format!("{OAUTH2}.params");
    if let Err(e) = check_count(
        "max_query_params",
        "parameters",
        o.params.len(),
        limits.max_query_params,
        "send fewer parameters",
    ) {
        out.push(Problem::new(path.clone(), e.message()).hint(e.fix));
    }
    for (k, v) in &o.params {
        if k.trim().is_empty() {
            out.push(Problem::new(
                path.clone(),
                "a parameter name must not be empty",
            ));
        } else if OAuth2Auth::RESERVED_PARAMS.contains(&k.as_str()) {
            out.push(
                Problem::new(
                    format!("{path}.{k}"),
                    format!("`{k}` is set by the worker itself"),
                )
                .hint("use client_id, client_secret, scopes and audience for these"),
            );
        }
        if let Err(e) = check_bytes(
            "max_value_bytes",
            "the value",
            v.len(),
            limits.max_value_bytes,
            "shorten the value",
        ) {
            out.push(Problem::new(format!("{path}.{k}"), e.message()).hint(e.fix));
        }
    }
}

/// `circuit_breaker`: usable values within their bounds.
pub(crate) fn circuit_breaker(b: &CircuitBreaker, out: &mut Vec<Problem>) {
    if b.failures == 0 || b.failures > MAX_BREAKER_FAILURES {
        out.push(
            Problem::new(format!("{BREAKER}.failures"), format!("must be between 1 and {MAX_BREAKER_FAILURES}"))
                .hint("consecutive failed requests to a host before the worker stops calling it; 5 by default"),
        );
    }
    if b.open_for < MIN_BREAKER_OPEN_FOR || b.open_for > MAX_BREAKER_OPEN_FOR {
        out.push(
            Problem::new(
                format!("{BREAKER}.open_for"),
                format!(
                    "must be between {}ms and {}s",
                    MIN_BREAKER_OPEN_FOR.as_millis(),
                    MAX_BREAKER_OPEN_FOR.as_secs()
                ),
            )
            .hint("how long the worker stops calling a failing host; 30s by default"),
        );
    }
    if b.max_wait < b.open_for || b.max_wait > MAX_BREAKER_WAIT {
        out.push(
            Problem::new(
                format!("{BREAKER}.max_wait"),
                format!(
                    "must be between open_for ({}ms) and {}s",
                    b.open_for.as_millis(),
                    MAX_BREAKER_WAIT.as_secs()
                ),
            )
            .hint(
                "how long a shard waits for an open breaker before its lease fails; 5m by default",
            ),
        );
    }
}

/// `conditional`: a full refresh of one response per shard.
pub(crate) fn conditional(p: &Pipeline, out: &mut Vec<Problem>) {
    let h = &p.spec.source.http;
    if !h.conditional {
        return;
    }
    let path = "spec.source.http.conditional";
    if h.pagination.kind != PaginationKind::None {
        out.push(
            Problem::new(
                path,
                format!(
                    "conditional requests need pagination.kind: none, not {}: an unchanged first \
                     page says nothing about the pages after it",
                    h.pagination.kind.as_str()
                ),
            )
            .hint("remove conditional, or fetch the whole collection in one response"),
        );
    }
    if p.spec.incremental.is_some() {
        out.push(
            Problem::new(path, "conditional requests are for full refreshes; an incremental pipeline already asks only for what is new")
                .hint("remove conditional or spec.incremental"),
        );
    }
}
