//! `GET /v1/updated?updated_after=&cursor=&limit=&far_future_id=`: records changed after a
//! time, as incremental APIs serve them, and a way to plant a record from the far future.
//!
//! `createdAt` grows with the id (2026-01-01 plus `id` minutes), so `updated_after=T`
//! serves the ids whose `createdAt` is later than `T`. With `far_future_id=N`, record `N`
//! is dated [`FAR_FUTURE`] instead: a bad clock or a placeholder date upstream. Since that
//! date is after any `updated_after`, the record is served on the first page of every
//! request, as a real API would, and a pipeline whose watermark took that date would ask
//! for nothing ever again. Pages are cursor-paginated like `/v1/cursor`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{
    dataset::{record, BASE_UNIX_SECS},
    error::ApiError,
    params::Params,
    state::MockState,
};

/// The date of the planted record.
pub const FAR_FUTURE: &str = "9999-12-31T23:59:59Z";

/// Record `id`, dated [`FAR_FUTURE`] when it is the planted one.
pub fn record_dated(id: u64, far_future_id: Option<u64>) -> Value {
    let mut r = record(id);
    if far_future_id == Some(id) {
        r["createdAt"] = json!(FAR_FUTURE);
    }
    r
}

/// The last id whose (regular) `createdAt` is at or before `text`, an RFC 3339 timestamp.
fn last_id_at_or_before(text: &str) -> Result<u64, ApiError> {
    let secs = apitap_common::timestamp::parse(text)
        .map_err(|e| ApiError::bad_param("updated_after", e))?;
    let since_base = secs.saturating_sub(BASE_UNIX_SECS);
    Ok(u64::try_from(since_base / 60).unwrap_or(0))
}

pub async fn updated(
    req: HttpRequest,
    state: web::Data<MockState>,
) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(req.query_string());
    let size = state.dataset().size();
    let limit = params.page_size("limit")?;
    let far = match params.get("far_future_id") {
        Some(_) => Some(params.u64_in("far_future_id", 1, 1, u64::MAX)?),
        None => None,
    };
    let after = match params.get("updated_after").filter(|t| !t.is_empty()) {
        Some(t) => last_id_at_or_before(t)?,
        None => 0,
    };
    let cursor = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.strip_prefix('c')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_param(
                        "cursor",
                        format!("expected `c<id>` as returned, got {c:?}"),
                    )
                })?,
        ),
    };
    let first = cursor.unwrap_or(0).max(after).saturating_add(1);
    let last = first.saturating_add(limit - 1).min(size);
    let mut data: Vec<Value> = (first..=last).map(|id| record_dated(id, far)).collect();
    if let Some(id) = far.filter(|&id| cursor.is_none() && id <= after && id <= size) {
        data.insert(0, record_dated(id, far));
    }
    let has_more = last < size && first <= last;
    Ok(HttpResponse::Ok().json(json!({
        "data": data,
        "next_cursor": has_more.then(|| format!("c{last}")),
        "has_more": has_more,
    })))
}
