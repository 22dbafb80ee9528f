//! Conditional requests for full refreshes (`source.http.conditional`): a response's `ETag`
//! and `Last-Modified` are kept with the shard's checkpoint (the coordinator hands them to
//! the next run as [`VALIDATORS_VAR`]), sent back as `If-None-Match` / `If-Modified-Since`,
//! and a `304 Not Modified` ends the shard with nothing to load.
//!
//! Validators are bounded: an `ETag` longer than [`MAX_ETAG_BYTES`] or a `Last-Modified`
//! that is not an HTTP date is not kept (the next run then fetches in full).

use std::collections::BTreeMap;

use apitap_common::checkpoint::VALIDATORS_VAR;
use reqwest::header::{
    HeaderMap, HeaderValue, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use serde::{Deserialize, Serialize};

/// Longest `ETag` kept (the value, quotes and `W/` included).
pub const MAX_ETAG_BYTES: usize = 512;

/// A response's validators.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// An HTTP date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Validators {
    fn checked(self) -> Option<Self> {
        let etag = self.etag.filter(|e| {
            e.len() <= MAX_ETAG_BYTES && !e.is_empty() && HeaderValue::from_str(e).is_ok()
        });
        let last_modified = self
            .last_modified
            .filter(|d| d.len() <= 64 && httpdate::parse_http_date(d).is_ok());
        (etag.is_some() || last_modified.is_some()).then_some(Self {
            etag,
            last_modified,
        })
    }

    /// The validators of a response, if it has usable ones.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(|s| s.trim().to_string())
        };
        let found = Self {
            etag: text(ETAG),
            last_modified: text(LAST_MODIFIED),
        };
        let had = found.etag.is_some() || found.last_modified.is_some();
        let kept = found.checked();
        if had && kept.is_none() {
            tracing::warn!(
                max_etag_bytes = MAX_ETAG_BYTES,
                "limit max_etag_bytes: response validators not kept; the next run fetches in full"
            );
        }
        kept
    }

    /// The validators the coordinator handed this shard, if any.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Option<Self> {
        let text = vars.get(VALIDATORS_VAR)?;
        serde_json::from_str::<Self>(text).ok()?.checked()
    }

    /// What the checkpoint keeps.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `If-None-Match` and `If-Modified-Since`.
    pub fn request_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = self
            .etag
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            h.insert(IF_NONE_MATCH, v);
        }
        if let Some(v) = self
            .last_modified
            .as_deref()
            .and_then(|d| HeaderValue::from_str(d).ok())
        {
            h.insert(IF_MODIFIED_SINCE, v);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_are_bounded_and_round_trip() {
        let mut h = HeaderMap::new();
        h.insert(ETAG, HeaderValue::from_static("W/\"abc\""));
        h.insert(
            LAST_MODIFIED,
            HeaderValue::from_static("Sat, 28 Nov 2026 09:00:00 GMT"),
        );
        let v = Validators::from_headers(&h).unwrap();
        let vars = BTreeMap::from([(VALIDATORS_VAR.to_string(), v.to_json())]);
        assert_eq!(Validators::from_vars(&vars), Some(v.clone()));
        let sent = v.request_headers();
        assert_eq!(sent[IF_NONE_MATCH], "W/\"abc\"");
        assert_eq!(sent[IF_MODIFIED_SINCE], "Sat, 28 Nov 2026 09:00:00 GMT");

        let long = format!("\"{}\"", "x".repeat(MAX_ETAG_BYTES));
        h.insert(ETAG, HeaderValue::from_str(&long).unwrap());
        h.insert(LAST_MODIFIED, HeaderValue::from_static("yesterday"));
        assert_eq!(Validators::from_headers(&h), None);
        assert_eq!(Validators::from_headers(&HeaderMap::new()), None);
        let junk = BTreeMap::from([(VALIDATORS_VAR.to_string(), "{not json".to_string())]);
        assert_eq!(Validators::from_vars(&junk), None);
    }
}
