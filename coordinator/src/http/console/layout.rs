//! The page shell every console page shares (head, navigation, who is signed in) and the
//! small formatting helpers of its cells. maud escapes every interpolated value, so names,
//! specs and errors that come from users cannot become markup.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

/// Headers of every console page: no caching of cluster data, no framing, and only this
/// server's own stylesheet, script and fetches.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console/cluster", "Cluster"),
    ("/console/workers", "Workers"),
    ("/console/pipelines", "Pipelines"),
    ("/console/runs", "Runs"),
    ("/console/ratelimits", "Rate limits"),
];

/// Who is looking, shown in the header.
pub struct Viewer<'a> {
    /// How the caller is named (token id, name and role, or anonymous).
    pub who: &'a str,
    /// Whether the caller signed in through the login form (and so can sign out).
    pub signed_in: bool,
    /// Whether this node is the leader (otherwise the data may lag and actions are refused).
    pub leader: bool,
}

/// A whole page: `title`, the navigation with `current` marked, and `body`.
pub fn page(title: &str, current: &str, viewer: Option<&Viewer<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ApiTap" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header {
                    strong { "ApiTap" }
                    nav {
                        @for (href, label) in NAV {
                            a href=(href) class=[(*href == current).then_some("current")] { (label) }
                        }
                    }
                    @if let Some(v) = viewer {
                        span.who {
                            (v.who)
                            @if !v.leader { " · " span.stale { "not the leader: data may lag" } }
                        }
                        @if v.signed_in {
                            form.inline method="post" action="/console/logout" {
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// `markup` as an HTML answer with the console's headers.
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header(("Cache-Control", "no-store"))
        .body(markup.into_string())
}

/// A page that only says what went wrong.
pub fn error_page(status: StatusCode, message: &str, viewer: Option<&Viewer<'_>>) -> HttpResponse {
    let body = html! {
        p.error { (message) }
        p { a href="/console/cluster" { "Back to the console" } }
    };
    respond(
        status,
        page(
            status.canonical_reason().unwrap_or("Error"),
            "",
            viewer,
            body,
        ),
    )
}

/// A Unix-ms time as RFC 3339 in UTC, or `-` for none.
pub fn time(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A short age such as `3s` or `2h`.
pub fn ago(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// The CSS class of a run or shard state.
pub fn state_class(state: &str) -> &'static str {
    match state {
        "succeeded" => "st ok",
        "failed" | "dead" => "st bad",
        "cancelled" => "st off",
        _ => "st live",
    }
}
