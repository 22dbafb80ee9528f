//! Signing in and out of the console, and its action forms. The session is the token
//! itself in an HttpOnly, SameSite=Strict cookie: checked on every request like a bearer
//! header, so a revoked or expired token ends the session at once.

use actix_web::cookie::{time::Duration as CookieAge, Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::layout::{error_page, page, respond};
use super::{refused, see_other};
use crate::http::actions::{act, Action, Refusal};
use crate::http::auth::{self, Via, COOKIE};
use crate::http::context::Ctx;
use crate::http::reply::not_leader_message;
use crate::node::Node;

/// How long the browser keeps the session cookie; the token's own expiry still applies.
pub const SESSION_HOURS: i64 = 8;

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: String,
}

fn form(error: Option<&str>) -> maud::Markup {
    page(
        "Sign in",
        "",
        None,
        html! {
            form.login method="post" action="/console/login" {
                @if let Some(e) = error { p.error { (e) } }
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required
                    placeholder="apitap_…";
                p { small { "An admin makes one with " code { "apitapctl token create NAME --role viewer" } "." } }
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub async fn login_form() -> HttpResponse {
    respond(StatusCode::OK, form(None))
}

pub async fn login(
    node: web::Data<Node>,
    req: HttpRequest,
    f: web::Form<LoginForm>,
) -> HttpResponse {
    if let Err(e) = auth::check_origin(&req, Via::Cookie) {
        return error_page(StatusCode::FORBIDDEN, e.message(), None);
    }
    let token = f.token.trim();
    if let Err(e) = crate::auth::verify_token(&node.state, token) {
        return respond(StatusCode::UNAUTHORIZED, form(Some(e.message())));
    }
    // Behind a TLS-terminating proxy (which says so in `Forwarded` or
    // `X-Forwarded-Proto`) the cookie is only ever sent over TLS.
    let https = req.connection_info().scheme() == "https";
    let cookie = Cookie::build(COOKIE, token.to_string())
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Strict)
        .max_age(CookieAge::hours(SESSION_HOURS))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header(("Location", "/console/cluster"))
        .finish()
}

pub async fn logout(req: HttpRequest) -> HttpResponse {
    if let Err(e) = auth::check_origin(&req, Via::Cookie) {
        return error_page(StatusCode::FORBIDDEN, e.message(), None);
    }
    let mut gone = Cookie::build(COOKIE, "").path("/").finish();
    gone.make_removal();
    HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header(("Location", "/console/login"))
        .finish()
}

/// An action form's answer: to the run's page, or a page saying why not.
async fn console_act(cx: Ctx, action: Action) -> HttpResponse {
    match act(&cx, action).await {
        Ok(run) => see_other(&format!("/console/runs/{}", run.run_id)),
        Err(Refusal::Status(e)) => refused(&e, None),
        Err(Refusal::NotLeader) => {
            let leader = cx.node.raft_metrics().current_leader;
            error_page(
                StatusCode::MISDIRECTED_REQUEST,
                &not_leader_message(&cx.node, leader),
                None,
            )
        }
    }
}

pub async fn run_now(cx: Ctx, path: web::Path<(String, String)>) -> HttpResponse {
    console_act(cx, Action::run_now(path)).await
}

pub async fn cancel(cx: Ctx, id: web::Path<u64>) -> HttpResponse {
    console_act(cx, Action::Cancel(*id)).await
}

pub async fn retry(cx: Ctx, id: web::Path<u64>) -> HttpResponse {
    console_act(cx, Action::Retry(*id)).await
}
