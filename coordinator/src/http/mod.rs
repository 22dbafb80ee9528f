//! The coordinator's HTTP front door for people and scripts, served by the admin server
//! (`api::admin`) beside `/health` and `/metrics`:
//!
//! - [`api`]: the JSON API under `/api`, the same model as `apitapctl -o json` (the
//!   protobuf messages of `ControlService`, built by `api::views`). Reads are answered
//!   from this node's applied state (`"stale": true` off the leader); actions only on the
//!   leader, through the `ControlService` handlers themselves.
//! - [`openapi`]: `/api/openapi.json`, generated from the handlers and types of [`api`].
//! - [`console`]: the web console under `/console`, HTML rendered here from the same views.
//! - [`auth`]: bearer tokens (header or console cookie) checked against the token store and
//!   the authorization table of the gRPC API; the Origin check of cookie-borne posts.
//! - [`events`]: Server-Sent Events of a run for its console page, a bounded number at once.
//! - [`context`]: the node, settings and request every handler starts from, one extractor.
//! - [`reply`]: gRPC statuses as HTTP answers, once.
//! - [`cors`]: cross-origin calls of `/api`, off unless `--http-cors-origin` names one.
//!
//! Dependencies run one way: `http` → `api`, `auth`, `node`, `state`; nothing below
//! knows of `http`.

pub mod actions;
pub mod api;
pub mod auth;
pub mod console;
pub mod context;
pub mod cors;
pub mod events;
pub mod model;
pub mod openapi;
pub mod reply;

use actix_web::web;

use crate::auth::Mode;

/// What the handlers need besides the node: fixed when the admin server starts.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Whether callers must present a token (as for gRPC).
    pub mode: Mode,
    /// Most items one listing returns (`--http-max-list`).
    pub max_list: u32,
}

/// Mounts the JSON API, its OpenAPI document and the console on an admin server app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    api::configure(cfg);
    cfg.route("/api/openapi.json", web::get().to(openapi::serve))
        .route(
            "/api/{tail:.*}",
            web::method(actix_web::http::Method::OPTIONS).to(cors::preflight),
        );
    console::configure(cfg);
}
