//! OAuth2 client credentials (RFC 6749 §4.4): the access token a source sends as
//! `Authorization: Bearer`.
//!
//! - One token per (worker process, pipeline, credentials): the [`TokenCache`] is the
//!   worker's, shared by every shard, and one shard at a time asks the token endpoint.
//! - A token is used until [`refresh_after`] its lifetime (10 % before the end, at most a
//!   minute early), then fetched again; a 401 from the source renews it once (the fetcher
//!   then repeats the request once).
//! - The token URL passes the egress deny-list, redirects to another origin are refused
//!   (the client id and secret go nowhere else), the response is read within
//!   `max_response_bytes`, and the token value is handed to the [`Redactor`] before use, so
//!   errors, logs and stored positions never hold it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apitap_common::spec::{ClientAuth, OAuth2Auth};
use reqwest::header::{HeaderValue, ACCEPT};
use serde_json::Value;
use url::Url;

use super::body::{self, BodyError};
use super::egress::Egress;
use super::error::{is_retriable_status, FetchError};
use super::redact::Redactor;

/// A token without `expires_in` is used this long at most (a 401 renews it earlier).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The refresh comes at most this long before a token expires.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Tokens a worker keeps; slots no shard uses are dropped beyond this.
const MAX_CACHED_TOKENS: usize = 1024;

/// How much of an error response of the token endpoint is read.
const ERROR_BODY_BYTES: u64 = 4096;

#[derive(Clone)]
struct Token {
    value: Arc<str>,
    refresh_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

/// The worker's tokens, by pipeline and credentials. Cheap to share (`Arc`).
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<u64, Slot>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        write!(f, "TokenCache({n} slots)")
    }
}

impl TokenCache {
    fn slot(&self, key: u64) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_CACHED_TOKENS && !slots.contains_key(&key) {
            slots.retain(|_, s| Arc::strong_count(s) > 1);
        }
        slots.entry(key).or_default().clone()
    }
}

/// When a token that lives `lifetime` is fetched again: 10 % of its lifetime before it
/// ends, at most [`MAX_REFRESH_MARGIN`] before.
pub fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub((lifetime / 10).min(MAX_REFRESH_MARGIN))
}

/// What the fetcher needs to ask for tokens: its client, egress rules and redactor.
pub(crate) struct Ctx<'a> {
    pub client: &'a reqwest::Client,
    pub egress: &'a Egress,
    pub redactor: &'a Redactor,
}

/// The token source of one fetcher (a private slot until [`OAuth2::share`]).
#[derive(Clone)]
pub(crate) struct OAuth2 {
    token_url: Url,
    /// `token_url` as errors show it.
    pub(crate) shown: String,
    client_id: String,
    client_secret: String,
    client_auth: ClientAuth,
    /// grant_type, scope, audience and the extra params (and the client for `post`).
    pub(crate) form: Vec<(String, String)>,
    max_bytes: u64,
    timeout: Duration,
    /// Identifies the credentials and grant (hash of all of the above).
    key: u64,
    slot: Slot,
}

impl OAuth2 {
    pub(crate) fn new(
        o: &OAuth2Auth,
        timeout: Duration,
        redactor: &Redactor,
    ) -> Result<Self, FetchError> {
        let config = |message: String| FetchError::Config {
            message: redactor.scrub(&message),
        };
        let token_url = Url::parse(&o.token_url)
            .map_err(|e| config(format!("auth.oauth2.token_url is not a valid URL: {e}")))?;
        if !matches!(token_url.scheme(), "http" | "https") {
            return Err(config(
                "auth.oauth2.token_url must use http or https".into(),
            ));
        }
        let mut form = vec![("grant_type".to_string(), "client_credentials".to_string())];
        if !o.scopes.is_empty() {
            form.push(("scope".into(), o.scopes.join(" ")));
        }
        if let Some(a) = &o.audience {
            form.push(("audience".into(), a.clone()));
        }
        form.extend(o.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        if o.client_auth == ClientAuth::Post {
            form.push(("client_id".into(), o.client_id.clone()));
            form.push(("client_secret".into(), o.client_secret.clone()));
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (o.token_url.as_str(), &o.client_id, &o.client_secret, &form).hash(&mut h);
        Ok(Self {
            shown: redactor.url(&token_url),
            token_url,
            client_id: o.client_id.clone(),
            client_secret: o.client_secret.clone(),
            client_auth: o.client_auth,
            form,
            max_bytes: o.max_response_bytes(),
            timeout,
            key: h.finish(),
            slot: Slot::default(),
        })
    }

    /// Uses the worker's `cache`: the token is shared with the other shards of `pipeline`.
    pub(crate) fn share(mut self, cache: &TokenCache, pipeline: &str) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (pipeline, self.key).hash(&mut h);
        self.slot = cache.slot(h.finish());
        self
    }

    /// The token to send: the cached one while it is fresh, else a new one.
    pub(crate) async fn token(&self, ctx: &Ctx<'_>) -> Result<Arc<str>, FetchError> {
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            ctx.redactor.remember_token(&t.value);
            return Ok(t.value.clone());
        }
        let fresh = self.request(ctx).await?;
        *slot = Some(fresh.clone());
        Ok(fresh.value)
    }

    /// A new token after the source refused `used` with a 401, unless another shard has
    /// already replaced it.
    pub(crate) async fn renew(&self, used: &str, ctx: &Ctx<'_>) -> Result<Arc<str>, FetchError> {
        let mut slot = self.slot.lock().await;
        if let Some(t) = slot
            .as_ref()
            .filter(|t| &*t.value != used && Instant::now() < t.refresh_at)
        {
            return Ok(t.value.clone());
        }
        *slot = None;
        let fresh = self.request(ctx).await?;
        *slot = Some(fresh.clone());
        Ok(fresh.value)
    }

    fn error(&self, ctx: &Ctx<'_>, message: String, transient: bool) -> FetchError {
        FetchError::Token {
            url: self.shown.clone(),
            message: ctx.redactor.scrub(&message),
            transient,
            limit: None,
        }
    }

    /// One token request.
    async fn request(&self, ctx: &Ctx<'_>) -> Result<Token, FetchError> {
        if let Err(denied) = ctx.egress.check_url(&self.token_url) {
            return Err(FetchError::Egress {
                url: self.shown.clone(),
                message: denied.to_string(),
            });
        }
        let started = Instant::now();
        let mut req = ctx
            .client
            .post(self.token_url.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .timeout(self.timeout)
            .form(&self.form);
        if self.client_auth == ClientAuth::Basic {
            // RFC 6749 §2.3.1: both are form-encoded before they are put in Basic.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&self.client_id), Some(enc(&self.client_secret)));
        }
        let resp = req.send().await.map_err(|e| {
            let e = e.without_url();
            let detail = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            self.error(ctx, format!("{e}{detail}"), true)
        })?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(self.error(
                ctx,
                "the token endpoint redirects to another origin; the client's credentials are \
                 never sent there: set auth.oauth2.token_url to the endpoint itself"
                    .into(),
                false,
            ));
        }
        if !status.is_success() {
            let text = body::read_capped(resp, ERROR_BODY_BYTES)
                .await
                .unwrap_or_default();
            return Err(self.error(
                ctx,
                status_message(status.as_u16(), &text),
                is_retriable_status(status.as_u16()),
            ));
        }
        let bytes = body::read_capped(resp, self.max_bytes).await.map_err(|e| match e {
            BodyError::TooLarge { .. } => {
                tracing::warn!(url = %self.shown, limit_bytes = self.max_bytes, "limit oauth2.max_response_bytes: token response refused");
                FetchError::Token {
                    url: self.shown.clone(),
                    message: format!(
                        "the token response is larger than the limit max_response_bytes of {} \
                         bytes; raise spec.source.http.auth.oauth2.max_response_bytes if the \
                         endpoint is right",
                        self.max_bytes
                    ),
                    transient: false,
                    limit: Some("oauth2.max_response_bytes"),
                }
            }
            BodyError::Transport(e) => self.error(ctx, e.without_url().to_string(), true),
        })?;
        let (value, lifetime) = parse_token(&bytes).map_err(|m| {
            self.error(
                ctx,
                format!("the token response is not a usable OAuth2 token: {m}"),
                false,
            )
        })?;
        ctx.redactor.remember_token(&value);
        let lifetime = lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME);
        tracing::info!(url = %self.shown, lifetime_s = lifetime.as_secs_f64(), "oauth2 token obtained");
        Ok(Token {
            value: Arc::from(value),
            refresh_at: started + refresh_after(lifetime),
        })
    }
}

/// The message for an error status of the token endpoint, with the OAuth2 `error` and
/// `error_description` when the body has them (RFC 6749 §5.2).
fn status_message(status: u16, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(|s| s.chars().take(200).collect::<String>())
    };
    let mut out = format!("HTTP {status}");
    if let Some(e) = field("error") {
        out.push_str(&format!(": {e}"));
    }
    if let Some(d) = field("error_description") {
        out.push_str(&format!(" ({d})"));
    }
    if matches!(status, 400 | 401 | 403) {
        out.push_str(
            "; check spec.source.http.auth.oauth2 (client_id, the client_secret's value, \
             scopes, audience, client_auth)",
        );
    }
    out
}

/// `access_token` and `expires_in` of a successful token response (RFC 6749 §5.1).
pub(crate) fn parse_token(body: &[u8]) -> Result<(String, Option<Duration>), String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("not JSON ({} bytes): {e}", body.len()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let token = match obj.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(_) => return Err("`access_token` is not a non-empty string".into()),
        None => return Err("it has no `access_token`".into()),
    };
    if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
        return Err("`access_token` holds characters an HTTP header cannot carry".into());
    }
    match obj.get("token_type").and_then(Value::as_str) {
        Some(t) if !t.eq_ignore_ascii_case("bearer") => {
            return Err(format!(
                "`token_type` is {:?}; only bearer tokens are supported",
                t.chars().take(40).collect::<String>()
            ))
        }
        _ => {}
    }
    let lifetime = match obj.get("expires_in") {
        None | Some(Value::Null) => None,
        // Some servers send the number as a string.
        Some(Value::String(s)) => Some(
            s.trim()
                .parse::<f64>()
                .map_err(|_| "`expires_in` is not a number of seconds".to_string())?,
        ),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => return Err("`expires_in` is not a number of seconds".into()),
    };
    let lifetime = match lifetime {
        None => None,
        Some(s) if s.is_finite() && s >= 1.0 => Some(Duration::from_secs_f64(
            s.min(DEFAULT_TOKEN_LIFETIME.as_secs_f64() * 24.0),
        )),
        Some(s) => {
            return Err(format!(
                "`expires_in` is {s}; a token must live at least 1 second"
            ))
        }
    };
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_comes_a_tenth_early_at_most_a_minute() {
        assert_eq!(
            refresh_after(Duration::from_secs(10)),
            Duration::from_secs(9)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3540)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(1)),
            Duration::from_millis(900)
        );
    }

    #[test]
    fn token_responses_are_checked() {
        let ok = |b: &str| parse_token(b.as_bytes());
        assert_eq!(
            ok(r#"{"access_token":"abc","token_type":"Bearer","expires_in":60}"#).unwrap(),
            ("abc".to_string(), Some(Duration::from_secs(60)))
        );
        assert_eq!(
            ok(r#"{"access_token":"abc","expires_in":"30"}"#).unwrap().1,
            Some(Duration::from_secs(30))
        );
        assert_eq!(ok(r#"{"access_token":"abc"}"#).unwrap().1, None);
        for (body, says) in [
            ("<html>", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"token_type":"bearer"}"#, "no `access_token`"),
            (r#"{"access_token":""}"#, "not a non-empty string"),
            (r#"{"access_token":"a\nb"}"#, "cannot carry"),
            (
                r#"{"access_token":"abc","token_type":"mac"}"#,
                "only bearer",
            ),
            (
                r#"{"access_token":"abc","expires_in":0}"#,
                "at least 1 second",
            ),
            (
                r#"{"access_token":"abc","expires_in":"soon"}"#,
                "not a number",
            ),
        ] {
            let e = ok(body).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn error_statuses_quote_the_oauth2_error() {
        let m = status_message(
            401,
            br#"{"error":"invalid_client","error_description":"bad secret"}"#,
        );
        assert!(
            m.starts_with("HTTP 401: invalid_client (bad secret); check"),
            "{m}"
        );
        assert_eq!(status_message(503, b"down"), "HTTP 503");
    }
}
