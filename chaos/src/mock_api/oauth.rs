//! An OAuth2 authorization server for one client (client credentials grant, RFC 6749 §4.4)
//! and the `/oauth/v1` endpoints that accept only the tokens it issued.
//!
//! `POST /oauth/token` takes a form-encoded body with `grant_type=client_credentials` and
//! the client's id and secret in HTTP Basic (form-encoded first, as §2.3.1 says) or in the
//! form (`client_id`, `client_secret`), and answers `{"access_token", "token_type":
//! "Bearer", "expires_in"}`. Tokens live [`OAuthConfig::token_lifetime`] (short in tests,
//! so that a run sees refreshes); `POST /_admin/oauth/revoke` ends every token at once, as
//! a key rotation on the server would. Token requests go through the request log like every
//! other request, so a test counts them there.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::ErrorInternalServerError,
    http::header::{AUTHORIZATION, WWW_AUTHENTICATE},
    middleware::Next,
    web, Error, HttpRequest, HttpResponse,
};
use serde_json::json;

use super::{auth::decode_base64, state::MockState};

/// Tokens kept; expired ones are dropped first when more are issued.
pub const MAX_TOKENS: usize = 10_000;

/// The one client the server knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of every token (whole seconds, at least 1).
    pub token_lifetime: Duration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            client_id: "apitap-client".into(),
            client_secret: "apitap-client-secret".into(),
            token_lifetime: Duration::from_secs(3600),
        }
    }
}

/// Issued tokens and their expiry.
#[derive(Debug, Default)]
pub struct TokenStore {
    tokens: HashMap<String, Instant>,
    issued: u64,
}

impl TokenStore {
    fn issue(&mut self, lifetime: Duration) -> String {
        let now = Instant::now();
        if self.tokens.len() >= MAX_TOKENS {
            self.tokens.retain(|_, until| *until > now);
        }
        if self.tokens.len() >= MAX_TOKENS {
            self.tokens.clear();
        }
        self.issued += 1;
        let token = format!("mock-{}-{:016x}", self.issued, rand::random::<u64>());
        self.tokens.insert(token.clone(), now + lifetime);
        token
    }

    fn valid(&self, token: &str) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Ends every token; returns how many there were.
    pub fn revoke_all(&mut self) -> usize {
        let n = self.tokens.len();
        self.tokens.clear();
        n
    }
}

fn lock(m: &Mutex<TokenStore>) -> std::sync::MutexGuard<'_, TokenStore> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(code).json(json!({"error": error, "error_description": description}))
}

/// `POST /oauth/token`.
pub async fn token(
    state: web::Data<MockState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let basic = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(decode_base64)
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((dec(id)?, dec(secret)?))
        });
    let client = basic.or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    let config = state.oauth();
    match client {
        Some((id, secret)) if id == config.client_id && secret == config.client_secret => {}
        Some(_) => return oauth_error(401, "invalid_client", "unknown client or wrong secret"),
        None => return oauth_error(401, "invalid_client", "no client credentials"),
    }
    let lifetime = config.token_lifetime.max(Duration::from_secs(1));
    let token = lock(state.tokens()).issue(lifetime);
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "scope": form.get("scope").cloned().unwrap_or_default(),
    }))
}

/// Middleware of `/oauth/v1`: a valid token issued by [`token`], or 401.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req
        .app_data::<web::Data<MockState>>()
        .cloned()
        .ok_or_else(|| ErrorInternalServerError("mock API state missing"))?;
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if presented.is_some_and(|t| lock(state.tokens()).valid(&t)) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let res = HttpResponse::Unauthorized()
        .insert_header((WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""))
        .json(json!({"error": "invalid_token"}));
    Ok(req.into_response(res))
}

/// `POST /_admin/oauth/revoke`: `{"revoked": n}`.
pub async fn revoke(state: web::Data<MockState>) -> HttpResponse {
    let n = lock(state.tokens()).revoke_all();
    HttpResponse::Ok().json(json!({"revoked": n}))
}
