//! Who calls the HTTP API and console, decided with the gRPC API's own parts: the token
//! store (`crate::auth::verify_token`) and the authorization table
//! (`crate::auth::policy`), each HTTP route naming the RPC whose requirement it shares.
//!
//! A token comes in the `Authorization: Bearer` header (scripts) or in the console's
//! session cookie (HttpOnly, SameSite=Strict). A post carried by the cookie must also come
//! from a page of this server (its `Origin` is this host), so another site cannot make a
//! browser act for its user even where SameSite is not honoured.

use actix_web::http::header;
use actix_web::HttpRequest;
use apitap_proto::identity::Identity;
use tonic::Status;

use super::Settings;
use crate::auth::{policy, Caller, Mode};
use crate::node::Node;

/// The console's session cookie: the token itself, readable by no script.
pub const COOKIE: &str = "apitap_session";

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Header,
    Cookie,
    /// No token (allowed only where the gRPC API allows anonymous callers).
    Nothing,
}

/// The caller of `req` once it may do what `rpc` (a `ControlService` method name) needs.
pub fn authorize(
    node: &Node,
    settings: &Settings,
    req: &HttpRequest,
    rpc: &str,
) -> Result<(Caller, Via), Status> {
    let (caller, via) = caller(node, settings.mode, req)?;
    let members: Vec<u64> = {
        let st = node.state();
        st.membership
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect()
    };
    let ctx = policy::Context {
        mode: settings.mode,
        members: &members,
    };
    policy::authorize(&ctx, &caller, &format!("/apitap.v1.ControlService/{rpc}"))?;
    Ok((caller, via))
}

/// Refuses a post a browser could have been made to send by another site: one carried by
/// the cookie needs an `Origin` naming this server; one without a token (insecure clusters)
/// may come without an `Origin` (curl, scripts) but not with another site's. A bearer
/// header is never added by a browser on its own, so such a post needs no `Origin`.
pub fn check_origin(req: &HttpRequest, via: Via) -> Result<(), Status> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok());
    let host = req.connection_info().host().to_string();
    let same = |o: &str| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            == Some(host.as_str())
    };
    let allowed = match (via, origin) {
        (Via::Header, _) | (Via::Nothing, None) => true,
        (Via::Cookie | Via::Nothing, Some(o)) => same(o),
        (Via::Cookie, None) => false,
    };
    if allowed {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "a console action must come from a page of this server (Origin {}, expected \
         http://{host}); scripts send `Authorization: Bearer <token>` instead of the cookie",
        origin.map_or_else(|| "absent".to_string(), |o| format!("{o:?}")),
    )))
}

fn caller(node: &Node, mode: Mode, req: &HttpRequest) -> Result<(Caller, Via), Status> {
    let (presented, via) = match req.headers().get(header::AUTHORIZATION) {
        Some(h) => (
            h.to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    Status::unauthenticated("the authorization header is not `Bearer <token>`")
                })?
                .to_string(),
            Via::Header,
        ),
        None => match req.cookie(COOKIE) {
            Some(c) => (c.value().to_string(), Via::Cookie),
            None if mode == Mode::Insecure => return Ok((Caller::Anonymous, Via::Nothing)),
            None => {
                // The policy answers a caller without a role with UNAUTHENTICATED.
                let nobody = Caller::Node(Identity::User("http caller without a token".into()));
                return Ok((nobody, Via::Nothing));
            }
        },
    };
    let token = crate::auth::verify_token(&node.state, &presented)?;
    Ok((Caller::Token { token, cert: None }, via))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::{check_origin, Via};

    #[test]
    fn a_cookie_post_must_come_from_this_host() {
        let req = |origin: Option<&str>| {
            let mut r = TestRequest::post().insert_header(("Host", "127.0.0.1:7401"));
            if let Some(o) = origin {
                r = r.insert_header(("Origin", o));
            }
            r.to_http_request()
        };
        assert!(check_origin(&req(Some("http://127.0.0.1:7401")), Via::Cookie).is_ok());
        for bad in [
            None,
            Some("http://evil.example"),
            Some("null"),
            Some("http://127.0.0.1:7401.evil"),
        ] {
            let e = check_origin(&req(bad), Via::Cookie).unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "{bad:?}");
        }
        // Without a token (insecure clusters): scripts send no Origin, other sites do.
        assert!(check_origin(&req(None), Via::Nothing).is_ok());
        assert!(check_origin(&req(Some("http://127.0.0.1:7401")), Via::Nothing).is_ok());
        assert!(check_origin(&req(Some("http://evil.example")), Via::Nothing).is_err());
        // A bearer header is not sent by a browser on its own: no Origin needed.
        assert!(check_origin(&req(None), Via::Header).is_ok());
        assert!(check_origin(&req(Some("http://evil.example")), Via::Header).is_ok());
    }
}
