//! Credential checks for `/v1` requests.
//!
//! The mock supports the three schemes ApiTap pipelines are configured with
//! (bearer token, API key, HTTP Basic) so connector auth can be tested end to
//! end. Every configured scheme is required, except that bearer and Basic both
//! live in the single `Authorization` header: when both are configured either
//! one is accepted.

use actix_web::http::header::{HeaderMap, AUTHORIZATION};

use super::{error::ApiError, params::Params};

/// Which credentials `/v1` requests must present; all `None` = open API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Required `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Required `X-Api-Key: <key>` header or `api_key=<key>` query parameter.
    pub api_key: Option<String>,
    /// Required HTTP Basic `(user, password)`.
    pub basic: Option<(String, String)>,
}

impl AuthConfig {
    /// Ok when the request carries every configured credential.
    pub fn check(&self, headers: &HeaderMap, params: &Params) -> Result<(), ApiError> {
        if let Some(key) = &self.api_key {
            let header_ok = headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == key);
            let query_ok = params.get("api_key") == Some(key.as_str());
            if !header_ok && !query_ok {
                return Err(ApiError::Unauthorized);
            }
        }
        if self.bearer_token.is_none() && self.basic.is_none() {
            return Ok(());
        }
        let authorization = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let bearer_ok = self
            .bearer_token
            .as_deref()
            .is_some_and(|token| scheme_value(authorization, "bearer") == Some(token));
        let basic_ok = self.basic.as_ref().is_some_and(|(user, pass)| {
            scheme_value(authorization, "basic")
                .and_then(decode_base64)
                .and_then(|raw| String::from_utf8(raw).ok())
                .is_some_and(|pair| pair.split_once(':') == Some((user.as_str(), pass.as_str())))
        });
        if bearer_ok || basic_ok {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// The credentials after `<scheme> ` in an `Authorization` value; the scheme
/// name is case-insensitive per RFC 9110.
fn scheme_value<'a>(authorization: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, value) = authorization.trim().split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| value.trim())
}

/// Decodes standard base64 (RFC 4648, padding optional); `None` on any
/// invalid input. Hand-written to avoid a dependency for 20 lines.
pub fn decode_base64(input: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let trimmed = input.trim_end_matches('=').as_bytes();
    if trimmed.len() % 4 == 1 || input.len() - trimmed.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        // Left-align the bits of a short final chunk, then emit whole bytes.
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}
