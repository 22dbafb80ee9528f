//! Cross-origin calls of the JSON API: off unless `--http-cors-origin` names the one origin
//! (e.g. `https://dash.example.com`) whose pages may call `/api` with a bearer token. Never
//! with the console's cookie: no `Access-Control-Allow-Credentials` is sent, so a browser
//! leaves the cookie out of cross-origin calls and does not show their answers otherwise.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

/// How long a browser may cache a preflight answer (seconds).
const PREFLIGHT_MAX_AGE: &str = "600";

/// The configured origin, if any.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origin: Option<HeaderValue>,
}

impl Cors {
    /// `origin` as given to `--http-cors-origin`; refused unless it is a bare
    /// `http(s)://host[:port]` (no path, no wildcard).
    pub fn new(origin: Option<&str>) -> Result<Cors, String> {
        let Some(o) = crate::config::cors_origin(origin)? else {
            return Ok(Cors::default());
        };
        let value = HeaderValue::from_str(o).map_err(|e| format!("--http-cors-origin: {e}"))?;
        Ok(Cors {
            origin: Some(value),
        })
    }

    /// The origin to allow for `req`: the configured one, when `req` comes from it and asks
    /// for the JSON API.
    pub fn allowed(&self, req: &HttpRequest) -> Option<HeaderValue> {
        let configured = self.origin.as_ref()?;
        let sent = req.headers().get(header::ORIGIN)?;
        (sent == configured && req.path().starts_with("/api/")).then(|| configured.clone())
    }

    /// Adds the headers that let the browser show the answer to the allowed origin.
    pub fn decorate(allowed: Option<HeaderValue>, headers: &mut HeaderMap) {
        if let Some(origin) = allowed {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

/// `OPTIONS /api/...`: the preflight of a call with `Authorization`; without the allowed
/// origin the answer has no CORS headers and the browser does not make the call.
pub async fn preflight(cors: web::Data<Cors>, req: HttpRequest) -> HttpResponse {
    let mut resp = HttpResponse::NoContent();
    if cors.allowed(&req).is_some() {
        resp.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "Authorization"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE));
    }
    resp.finish()
}

#[cfg(test)]
mod tests {
    use actix_web::dev::Service;
    use actix_web::http::Method;
    use actix_web::{test as actix_test, App};

    use super::*;

    #[test]
    fn only_a_bare_origin_is_accepted() {
        assert!(Cors::new(None).unwrap().origin.is_none());
        assert!(Cors::new(Some("https://dash.example.com:8443")).is_ok());
        for bad in [
            "*",
            "dash.example.com",
            "https://",
            "https://a/b",
            "http://*.example.com",
        ] {
            assert!(Cors::new(Some(bad)).is_err(), "{bad}");
        }
    }

    #[actix_web::test]
    async fn the_allowed_origin_gets_the_headers_and_no_other() {
        let cors = Cors::new(Some("https://dash.example.com")).unwrap();
        let app = actix_test::init_service(
            App::new()
                .app_data(web::Data::new(cors.clone()))
                .wrap_fn(move |req, srv| {
                    let allowed = cors.allowed(req.request());
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        Cors::decorate(allowed, res.headers_mut());
                        Ok(res)
                    }
                })
                .route("/api/x", web::get().to(HttpResponse::Ok))
                .route("/api/{tail:.*}", web::method(Method::OPTIONS).to(preflight)),
        )
        .await;
        let call = |method: Method, origin: &'static str| {
            actix_test::TestRequest::default()
                .method(method)
                .uri("/api/x")
                .insert_header(("Origin", origin))
                .to_request()
        };
        let allow = |r: &actix_web::dev::ServiceResponse| {
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let ok =
            actix_test::call_service(&app, call(Method::GET, "https://dash.example.com")).await;
        assert_eq!(allow(&ok).as_deref(), Some("https://dash.example.com"));
        assert!(ok
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none());
        let other = actix_test::call_service(&app, call(Method::GET, "https://evil.example")).await;
        assert_eq!(allow(&other), None);
        let pre =
            actix_test::call_service(&app, call(Method::OPTIONS, "https://dash.example.com")).await;
        assert_eq!(
            pre.headers()
                .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
                .unwrap(),
            "Authorization"
        );
        let pre =
            actix_test::call_service(&app, call(Method::OPTIONS, "https://evil.example")).await;
        assert!(pre
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
            .is_none());
    }
}
