//! The wrapper around every `/v1` request: injected faults, authentication and
//! the request log, in that order.
//!
//! Faults come first on purpose: they model the network or a gateway in front
//! of the API (rate limiter, flaky proxy), so the "next N requests" of a drill
//! are counted whatever the request carries. Then credentials are checked,
//! then the endpoint runs; a truncate fault cuts whatever body came back.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{
    body::{self, BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::ErrorInternalServerError,
    http::{
        header::{CONTENT_LENGTH, RETRY_AFTER},
        StatusCode,
    },
    middleware::Next,
    web, Error, HttpResponse, ResponseError,
};
use serde_json::json;

use super::{faults::Fault, params::Params, request_log::RequestLogEntry, state::MockState};

/// Middleware function for the `/v1` scope (see the module doc).
pub async fn v1_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let at_ms = unix_ms();
    let state = req
        .app_data::<web::Data<MockState>>()
        .cloned()
        .ok_or_else(|| ErrorInternalServerError("mock API state missing"))?;
    let path = req.path().to_owned();
    let query = req.query_string().to_owned();

    let fault = state.take_fault();
    if let Some(Fault::Latency { ms }) = fault {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut res = match fault {
        Some(Fault::Status {
            status,
            retry_after_secs,
        }) => req.into_response(fault_response(status, retry_after_secs)),
        _ => match state.auth().check(req.headers(), &Params::parse(&query)) {
            Err(err) => req.into_response(err.error_response()),
            // Handlers turn their errors into responses, so `Err` only comes
            // from actix itself; it is logged and passed on for actix to answer.
            // (The request cannot be cloned to build a response here: cloning
            // an `HttpRequest` before routing breaks path matching.)
            Ok(()) => match next.call(req).await {
                Ok(res) => res.map_into_boxed_body(),
                Err(err) => {
                    let status = err.as_response_error().status_code().as_u16();
                    log(&state, started, at_ms, path, query, status, fault);
                    return Err(err);
                }
            },
        },
    };
    if fault == Some(Fault::Truncate) {
        res = truncate(res).await?;
    }

    log(
        &state,
        started,
        at_ms,
        path,
        query,
        res.status().as_u16(),
        fault,
    );
    Ok(res)
}

/// Appends the request to the request log and traces it.
fn log(
    state: &MockState,
    started: Instant,
    at_ms: u64,
    path: String,
    query: String,
    status: u16,
    fault: Option<Fault>,
) {
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let seq = state.record_request(RequestLogEntry {
        seq: 0,
        at_ms,
        path: path.clone(),
        query: query.clone(),
        status,
        latency_ms,
    });
    tracing::info!(seq, %path, %query, status, latency_ms, ?fault, "mock api request");
}

/// The answer of a status fault: JSON error, plus `Retry-After` if asked.
fn fault_response(status: u16, retry_after_secs: Option<u64>) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut builder = HttpResponse::build(code);
    if let Some(secs) = retry_after_secs {
        builder.insert_header((RETRY_AFTER, secs.to_string()));
    }
    builder.json(json!({"error": "injected fault", "status": code.as_u16()}))
}

/// Keeps the status and headers but only the first half of the body; the
/// Content-Length is recomputed from the cut body by actix.
async fn truncate(res: ServiceResponse<BoxBody>) -> Result<ServiceResponse<BoxBody>, Error> {
    let (req, res) = res.into_parts();
    let (mut head, body) = res.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|e| ErrorInternalServerError(e.to_string()))?;
    head.headers_mut().remove(CONTENT_LENGTH);
    let cut = bytes.slice(..bytes.len() / 2);
    Ok(ServiceResponse::new(
        req,
        head.set_body(cut).map_into_boxed_body(),
    ))
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
