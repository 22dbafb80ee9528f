//! Client-facing errors of the mock API.
//!
//! Every error is a small JSON object `{"error": "..."}` so clients under test
//! can log it verbatim; bad query parameters also carry `"parameter"` so tests
//! can assert on which one was rejected without parsing prose.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde_json::json;

/// An error answered to the client; never a panic.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter that does not parse or is out of range (400).
    #[error("invalid query parameter `{name}`: {reason}")]
    BadParam {
        /// The parameter's name as it appears in the query string.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A request body that is not the JSON expected (400).
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// Missing or wrong credentials (401).
    #[error("unauthorized")]
    Unauthorized,
}

impl ApiError {
    /// Shorthand for [`ApiError::BadParam`].
    pub fn bad_param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::BadParam {
            name,
            reason: reason.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadParam { .. } | Self::BadBody(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            Self::BadParam { name, .. } => json!({"error": self.to_string(), "parameter": name}),
            _ => json!({"error": self.to_string()}),
        };
        HttpResponse::build(self.status_code()).json(body)
    }
}
