//! The worker's HTTP client: one per worker, shared by every shard. Its redirect policy and
//! DNS resolver enforce what no pipeline may change:
//!
//! - redirects within the origin of the request (scheme, host, port) are followed, at most
//!   [`MAX_REDIRECTS`] of them, never from https down to http, never to a denied address;
//! - a redirect to another origin is not followed here: the response comes back to the
//!   [`Fetcher`](super::Fetcher), which refuses it or (with `follow.cross_origin`) follows
//!   it without credentials;
//! - every resolved address passes the egress deny-list ([`EgressResolver`]).

use std::sync::Arc;

use apitap_common::limits::MAX_REDIRECTS;
use reqwest::redirect::{Attempt, Policy};

use super::egress::{Egress, EgressResolver};

/// The client every [`Fetcher`](super::Fetcher) of a worker should be given.
pub fn build(egress: Arc<Egress>) -> Result<reqwest::Client, reqwest::Error> {
    builder(egress).build()
}

/// [`build`] before its last touches (tests add `no_proxy`).
pub fn builder(egress: Arc<Egress>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("apitap-worker/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect_policy(egress.clone()))
        .dns_resolver(Arc::new(EgressResolver { egress }))
}

/// The redirect rules above, as a reqwest policy.
pub fn redirect_policy(egress: Arc<Egress>) -> Policy {
    Policy::custom(move |attempt| decide(&egress, attempt))
}

fn decide(egress: &Egress, attempt: Attempt<'_>) -> reqwest::redirect::Action {
    let Some(first) = attempt.previous().first().cloned() else {
        return attempt.stop();
    };
    let last = attempt.previous().last().cloned().unwrap_or(first.clone());
    let next = attempt.url().clone();
    if attempt.previous().len() > MAX_REDIRECTS {
        tracing::warn!(
            limit = "max_redirects",
            max = MAX_REDIRECTS,
            "limit max_redirects: redirect refused"
        );
        return attempt.error(format!(
            "more than the limit max_redirects of {MAX_REDIRECTS} redirects"
        ));
    }
    if !matches!(next.scheme(), "http" | "https") {
        return attempt.error(format!(
            "redirect to scheme `{}`; only http and https are fetched",
            next.scheme()
        ));
    }
    if last.scheme() == "https" && next.scheme() == "http" {
        return attempt
            .error("redirect downgrades from https to http; refusing to follow it".to_string());
    }
    if let Err(denied) = egress.check_url(&next) {
        tracing::warn!(target = %denied.target, "limit egress_deny: redirect refused");
        return attempt.error(denied);
    }
    if next.origin() != first.origin() {
        // The fetcher decides, without the credentials of this request.
        return attempt.stop();
    }
    attempt.follow()
}
