//! The `/v1` endpoints, one per pagination style ApiTap supports (and Stripe's
//! `starting_after`, a cursor taken from the last record).
//!
//! All serve the same records and honour `from_id`/`to_id` (inclusive), so a
//! test can load the same data through every paginator and compare. Pages past
//! the end are an empty 200, as most real APIs do.

use actix_web::{
    http::header::{HOST, LINK},
    web, HttpRequest, HttpResponse,
};
use serde_json::{json, Value};

use super::{
    dataset::record,
    error::ApiError,
    params::{IdRange, Params},
    state::MockState,
};

type ApiResult = Result<HttpResponse, ApiError>;

/// Query parameters and the id window of a request.
fn parse(req: &HttpRequest, state: &MockState) -> Result<(Params, IdRange), ApiError> {
    let params = Params::parse(req.query_string());
    let range = IdRange::from_params(&params, state.dataset().size())?;
    Ok((params, range))
}

/// The records with the given ids.
fn records(ids: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    ids.map(record).collect()
}

/// `http://HOST` from the request's Host header, for absolute next links.
fn base_url(req: &HttpRequest) -> String {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| req.connection_info().host().to_owned());
    format!("http://{host}")
}

/// `GET /v1/limit_offset?offset=&limit=` → `{"data": [...], "total": N}`.
pub async fn limit_offset(req: HttpRequest, state: web::Data<MockState>) -> ApiResult {
    let (params, range) = parse(&req, &state)?;
    let offset = params.u64_in("offset", 0, 0, u64::MAX)?;
    let limit = params.page_size("limit")?;
    let data = records(range.page(offset, limit));
    Ok(HttpResponse::Ok().json(json!({"data": data, "total": range.len()})))
}

/// `GET /v1/page_number?page=&per_page=` (1-based) →
/// `{"data": [...], "page": p, "total_pages": T}`.
pub async fn page_number(req: HttpRequest, state: web::Data<MockState>) -> ApiResult {
    let (params, range) = parse(&req, &state)?;
    let page = params.u64_in("page", 1, 1, u64::MAX)?;
    let per_page = params.page_size("per_page")?;
    let data = records(range.page((page - 1).saturating_mul(per_page), per_page));
    Ok(HttpResponse::Ok().json(json!({
        "data": data,
        "page": page,
        "total_pages": range.len().div_ceil(per_page),
    })))
}

/// `GET /v1/cursor?cursor=&limit=` →
/// `{"data": [...], "next_cursor": "c<last id>" | null, "has_more": bool}`.
/// No (or an empty) cursor starts at the beginning.
pub async fn cursor(req: HttpRequest, state: web::Data<MockState>) -> ApiResult {
    let (params, range) = parse(&req, &state)?;
    let limit = params.page_size("limit")?;
    let after = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c
            .strip_prefix('c')
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_param("cursor", format!("expected `c<id>` as returned, got {c:?}"))
            })?,
    };
    let ids = range.page_after(after, limit);
    let last = *ids.end();
    let has_more = !ids.is_empty() && last < range.last;
    let next_cursor = has_more.then(|| format!("c{last}"));
    Ok(HttpResponse::Ok().json(json!({
        "data": records(ids),
        "next_cursor": next_cursor,
        "has_more": has_more,
    })))
}

/// `GET /v1/starting_after?starting_after=<id>&limit=` → `{"object": "list", "data": [...],
/// "has_more": bool}`: Stripe's shape, where the next cursor is the last record's `id`.
pub async fn starting_after(req: HttpRequest, state: web::Data<MockState>) -> ApiResult {
    let (params, range) = parse(&req, &state)?;
    let limit = params.page_size("limit")?;
    let after = params.u64_in("starting_after", 0, 0, u64::MAX)?;
    let ids = range.page_after(after, limit);
    let has_more = !ids.is_empty() && *ids.end() < range.last;
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": records(ids),
        "has_more": has_more,
    })))
}

/// `GET /v1/next_url?after=&limit=` → `{"data": [...], "next": URL | null}`
/// where `URL` is absolute and keeps `limit`, `from_id` and `to_id`.
pub async fn next_url(req: HttpRequest, state: web::Data<MockState>) -> ApiResult {
    let (params, range) = parse(&req, &state)?;
    let after = params.u64_in("after", 0, 0, u64::MAX)?;
    let limit = params.page_size("limit")?;
    let ids = range.page_after(after, limit);
    let last = *ids.end();
    let next = (!ids.is_empty() && last < range.last).then(|| {
        format!(
            "{}/v1/next_url?after={last}&limit={limit}{}",
            base_url(&req),
            range.query_suffix()
        )
    });
    Ok(HttpResponse::Ok().json(json!({"data": records(ids), "next": next})))
}

/// `GET /v1/link_header?page=&per_page=` → bare JSON array, plus
/// `Link: <URL>; rel="next"` (RFC 8288) while there is a next page.
pub async fn link_header(req: HttpRequest, state: web::Data<MockState>) -> ApiResult {
    let (params, range) = parse(&req, &state)?;
    let page = params.u64_in("page", 1, 1, u64::MAX)?;
    let per_page = params.page_size("per_page")?;
    let data = records(range.page((page - 1).saturating_mul(per_page), per_page));
    let mut res = HttpResponse::Ok();
    if page < range.len().div_ceil(per_page) {
        let next = format!(
            "<{}/v1/link_header?page={}&per_page={per_page}{}>; rel=\"next\"",
            base_url(&req),
            page + 1,
            range.query_suffix()
        );
        res.insert_header((LINK, next));
    }
    Ok(res.json(data))
}

/// `GET /v1/all` → bare JSON array of every record in the window.
///
/// Conditional: the response has an `ETag` (of the dataset's size and the query) and a
/// `Last-Modified` (a fixed date plus one second per record), and a request whose
/// `If-None-Match` matches, or whose `If-Modified-Since` is not older, gets `304 Not
/// Modified` with no body. Growing the dataset changes both.
pub async fn all(req: HttpRequest, state: web::Data<MockState>) -> ApiResult {
    use actix_web::http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
    use std::hash::{Hash, Hasher};
    let (_, range) = parse(&req, &state)?;
    let size = state.dataset().size();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    req.query_string().hash(&mut h);
    let etag = format!("\"{size}-{:x}\"", h.finish());
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000 + size);
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let unchanged = match (header(IF_NONE_MATCH), header(IF_MODIFIED_SINCE)) {
        (Some(tags), _) => tags
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag),
        (None, Some(since)) => httpdate::parse_http_date(since).is_ok_and(|s| s >= modified),
        (None, None) => false,
    };
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((ETAG, etag))
        .insert_header((LAST_MODIFIED, httpdate::fmt_http_date(modified)));
    if unchanged {
        return Ok(res.finish());
    }
    Ok(res.json(records(range.page(0, u64::MAX))))
}
