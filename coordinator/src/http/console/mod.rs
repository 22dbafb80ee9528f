//! The web console: server-rendered pages under `/console` over the same views and actions
//! as the JSON API, for laptop and phone, with one small script for live run progress.
//!
//! Signing in stores the token in an HttpOnly, SameSite=Strict cookie (no script can read
//! it); actions are form posts that also pass the Origin check of `http::auth`. Pages need
//! the viewer role, actions the operator role, exactly as the gRPC API.

mod chart;
mod layout;
mod pages;
mod run_page;
mod session;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::Markup;
use tonic::{Code, Status};

use self::layout::{error_page, page, respond, Viewer};
use super::api::{list_limit, pipeline_view, run_of};
use super::auth;
use super::context::Ctx;
use crate::api::views::{self, RunFilter};
use crate::auth::Caller;
use crate::state::access::Role;

/// Mounts the console's pages, forms and assets.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(home))
        .route("/console/", web::get().to(home))
        .route("/console/login", web::get().to(session::login_form))
        .route("/console/login", web::post().to(session::login))
        .route("/console/logout", web::post().to(session::logout))
        .route("/console/cluster", web::get().to(cluster))
        .route("/console/workers", web::get().to(workers))
        .route("/console/pipelines", web::get().to(pipelines))
        .route("/console/runs", web::get().to(runs))
        .route("/console/runs/{id}", web::get().to(run))
        .route("/console/ratelimits", web::get().to(rate_limits))
        .route(
            "/console/pipelines/{namespace}/{name}/run",
            web::post().to(session::run_now),
        )
        .route("/console/runs/{id}/cancel", web::post().to(session::cancel))
        .route("/console/runs/{id}/retry", web::post().to(session::retry))
        .route("/console/assets/console.css", web::get().to(css))
        .route("/console/assets/console.js", web::get().to(js));
}

async fn home() -> HttpResponse {
    see_other("/console/cluster")
}

/// 303 to `to`: where a form post or a page that needs a sign-in sends the browser.
pub(super) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .finish()
}

/// A page for a caller who may call `rpc`: `render` makes its title and body; a caller
/// without a token is sent to sign in, one without the role is told what it lacks.
fn show(
    cx: &Ctx,
    rpc: &str,
    current: &str,
    render: impl FnOnce(&Caller) -> Result<(String, Markup), Status>,
) -> HttpResponse {
    let (caller, via) = match cx.authorize(rpc) {
        Ok(c) => c,
        Err(e) => return refused(&e, None),
    };
    let who = caller.describe();
    let viewer = Viewer {
        who: &who,
        signed_in: via == auth::Via::Cookie,
        leader: cx.node.is_leader(),
    };
    match render(&caller) {
        Ok((title, body)) => respond(StatusCode::OK, page(&title, current, Some(&viewer), body)),
        Err(e) => refused(&e, Some(&viewer)),
    }
}

/// A refusal as a page: no (valid) token → the login form.
pub(super) fn refused(e: &Status, viewer: Option<&Viewer<'_>>) -> HttpResponse {
    if e.code() == Code::Unauthenticated {
        return see_other("/console/login");
    }
    error_page(super::reply::http_status(e.code()), e.message(), viewer)
}

/// Whether `caller` may press the action buttons (start, cancel).
fn can_act(caller: &Caller) -> bool {
    caller.role().is_some_and(|r| r >= Role::Operator)
}

async fn cluster(cx: Ctx) -> HttpResponse {
    show(&cx, "ClusterStatus", "/console/cluster", |_| {
        let status = views::cluster_status(&cx.node, views::Digest::Skip);
        Ok(("Cluster".into(), pages::cluster(&status)))
    })
}

async fn workers(cx: Ctx) -> HttpResponse {
    show(&cx, "ClusterStatus", "/console/workers", |_| {
        let list = views::workers(&cx.node);
        Ok(("Workers".into(), pages::workers(&list, cx.node.is_leader())))
    })
}

async fn pipelines(cx: Ctx) -> HttpResponse {
    show(&cx, "ListPipelines", "/console/pipelines", |caller| {
        let list: Vec<_> = views::pipelines(&cx.node, caller, "", cx.settings.max_list as usize)
            .into_iter()
            .map(|p| pipeline_view(&cx.node, p))
            .collect();
        Ok(("Pipelines".into(), pages::pipelines(&list, can_act(caller))))
    })
}

async fn runs(cx: Ctx) -> HttpResponse {
    show(&cx, "ListRuns", "/console/runs", |caller| {
        let filter = RunFilter {
            limit: list_limit(None, &cx.settings)?,
            ..RunFilter::default()
        };
        let list = views::runs(&cx.node, caller, &filter);
        Ok(("Runs".into(), pages::runs(&list)))
    })
}

async fn run(cx: Ctx, id: web::Path<u64>) -> HttpResponse {
    show(&cx, "GetRun", "/console/runs", |caller| {
        let run = run_of(&cx.node, caller, *id)?;
        Ok((format!("Run #{id}"), run_page::run(&run, can_act(caller))))
    })
}

async fn rate_limits(cx: Ctx) -> HttpResponse {
    show(&cx, "ListRateLimits", "/console/ratelimits", |_| {
        let now = apitap_common::time::now_ms();
        let limits = views::rate_limits(&cx.node);
        let history = cx.node.history.rates.series();
        let body = pages::rate_limits(&limits, &history, now, cx.node.is_leader());
        Ok(("Rate limits".into(), body))
    })
}

async fn css() -> HttpResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    )
}

async fn js() -> HttpResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    )
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "max-age=300"))
        .body(body)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
