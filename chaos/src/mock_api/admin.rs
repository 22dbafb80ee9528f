//! `/_admin` endpoints: fault injection, dataset growth, request log and
//! health. They are never authenticated, faulted or logged, so a drill can
//! always steer and inspect the server it is breaking.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error::ApiError, faults::FaultSpec, state::MockState};

type ApiResult = Result<HttpResponse, ApiError>;

/// Parses a JSON body into `T`, answering 400 with the reason otherwise.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadBody(e.to_string()))
}

/// `POST /_admin/faults` with one fault object (or an array of them) →
/// `{"queued": n}`, n being the number of faults now pending.
pub async fn push_faults(state: web::Data<MockState>, body: web::Bytes) -> ApiResult {
    let objects = match parse_body::<Value>(&body)? {
        Value::Array(items) => items,
        single => vec![single],
    };
    // Validate everything first so a bad entry queues nothing.
    let specs = objects
        .into_iter()
        .map(FaultSpec::from_json)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::BadBody)?;
    let mut queued = state.pending_faults().len();
    for spec in specs {
        queued = state.push_fault(spec);
    }
    Ok(HttpResponse::Ok().json(json!({"queued": queued})))
}

/// `GET /_admin/faults` → array of pending faults, head first.
pub async fn list_faults(state: web::Data<MockState>) -> HttpResponse {
    let faults: Vec<Value> = state
        .pending_faults()
        .iter()
        .map(FaultSpec::to_json)
        .collect();
    HttpResponse::Ok().json(faults)
}

/// `DELETE /_admin/faults` → `{"queued": 0}`.
pub async fn clear_faults(state: web::Data<MockState>) -> HttpResponse {
    state.clear_faults();
    HttpResponse::Ok().json(json!({"queued": 0}))
}

/// Body of `POST /_admin/grow`.
#[derive(Debug, Deserialize)]
struct Grow {
    count: u64,
}

/// `POST /_admin/grow` `{"count": N}` → `{"records": new_size}`.
pub async fn grow(state: web::Data<MockState>, body: web::Bytes) -> ApiResult {
    let Grow { count } = parse_body(&body)?;
    let records = state.dataset().grow(count);
    Ok(HttpResponse::Ok().json(json!({"records": records})))
}

/// `GET /_admin/requests` → array of `{seq, at_ms, path, query, status,
/// latency_ms}`, oldest first.
pub async fn requests(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(state.requests())
}

/// `GET /_admin/stats` → `{"requests": n, "by_status": {...}, "records": size}`.
pub async fn stats(state: web::Data<MockState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats())
}

/// `GET /_admin/health` → 200 `ok`.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}
