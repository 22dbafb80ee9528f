//! A deterministic mock REST API for tests, the demo and chaos drills.
//!
//! It is a real actix-web HTTP server over [`dataset::record`], a pure function
//! of the record id, so anyone can recompute the expected warehouse contents.
//! Six `/v1` endpoints cover the pagination styles ApiTap supports, `/v1/updated`
//! serves records changed after a time (with an optional far-future record); `/oauth`
//! issues OAuth2 tokens and serves the same endpoints to their holders ([`oauth`]); `/_admin`
//! endpoints inject faults (status codes, latency, truncated bodies), grow the
//! dataset and expose the request log. Each submodule documents one concept.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use apitap_chaos::mock_api::{start, MockApiConfig};
//! let api = start(MockApiConfig::with_records(500), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("{}/v1/cursor", api.url());
//! api.stop().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod auth;
pub mod dataset;
pub mod error;
pub mod faults;
pub mod middleware;
pub mod oauth;
pub mod pagination;
pub mod params;
pub mod request_log;
pub mod state;
pub mod updated;

#[cfg(test)]
mod oauth_tests;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use actix_web::{dev::ServerHandle, middleware::from_fn, web, App, HttpResponse, HttpServer};
use tokio::task::JoinHandle;

pub use auth::AuthConfig;
pub use dataset::{record, Dataset};
pub use faults::{Fault, FaultSpec};
pub use oauth::OAuthConfig;
pub use request_log::RequestLogEntry;
pub use state::MockState;

/// How a mock API server is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MockApiConfig {
    /// Initial number of records (ids `1..=records`).
    pub records: u64,
    /// When set, `/v1` requires `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// When set, `/v1` requires `X-Api-Key: <key>` or `?api_key=<key>`.
    pub api_key: Option<String>,
    /// When set, `/v1` requires HTTP Basic `(user, password)`.
    pub basic: Option<(String, String)>,
    /// The client of `/oauth/token` and its tokens' lifetime.
    pub oauth: OAuthConfig,
}

impl MockApiConfig {
    /// An unauthenticated API serving `records` records.
    pub fn with_records(records: u64) -> Self {
        Self {
            records,
            ..Self::default()
        }
    }

    /// Its OAuth2 tokens live `lifetime` (1h by default).
    pub fn with_token_lifetime(mut self, lifetime: std::time::Duration) -> Self {
        self.oauth.token_lifetime = lifetime;
        self
    }

    /// The shared state this configuration starts with.
    pub fn into_state(self) -> web::Data<MockState> {
        let auth = AuthConfig {
            bearer_token: self.bearer_token,
            api_key: self.api_key,
            basic: self.basic,
        };
        web::Data::new(MockState::new(self.records, auth).with_oauth(self.oauth))
    }
}

/// Registers every route and the state on an actix `App`; used by [`start`]
/// and by in-process tests (`App::new().configure(configure(state))`).
pub fn configure(state: web::Data<MockState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .service(
                web::scope("/oauth")
                    .wrap(from_fn(middleware::v1_middleware))
                    .route("/token", web::post().to(oauth::token))
                    .service(data_routes(
                        web::scope("/v1").wrap(from_fn(oauth::require_token)),
                    )),
            )
            .service(
                data_routes(web::scope("/v1").wrap(from_fn(middleware::v1_middleware)))
                    // A hostile upstream: answers 400 with the request's query in the body,
                    // as APIs that echo a bad parameter (an API key included) do.
                    .route(
                        "/echo_error",
                        web::get().to(|req: actix_web::HttpRequest| async move {
                            HttpResponse::BadRequest().json(serde_json::json!({
                                "error": "bad request",
                                "query": req.query_string(),
                            }))
                        }),
                    ),
            )
            .service(
                web::scope("/_admin")
                    .service(
                        web::resource("/faults")
                            .route(web::post().to(admin::push_faults))
                            .route(web::get().to(admin::list_faults))
                            .route(web::delete().to(admin::clear_faults)),
                    )
                    .route("/grow", web::post().to(admin::grow))
                    .route("/oauth/revoke", web::post().to(oauth::revoke))
                    .route("/requests", web::get().to(admin::requests))
                    .route("/stats", web::get().to(admin::stats))
                    .route("/health", web::get().to(admin::health)),
            )
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(serde_json::json!({"error": "not found"}))
            }));
    }
}

/// The data endpoints, served under `/v1` and (with OAuth2 tokens) `/oauth/v1`.
fn data_routes<T>(scope: actix_web::Scope<T>) -> actix_web::Scope<T>
where
    T: actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Error = actix_web::Error,
        InitError = (),
    >,
{
    scope
        .route("/limit_offset", web::get().to(pagination::limit_offset))
        .route("/page_number", web::get().to(pagination::page_number))
        .route("/cursor", web::get().to(pagination::cursor))
        .route("/starting_after", web::get().to(pagination::starting_after))
        .route("/next_url", web::get().to(pagination::next_url))
        .route("/link_header", web::get().to(pagination::link_header))
        .route("/all", web::get().to(pagination::all))
        .route("/updated", web::get().to(updated::updated))
}

/// Binds `bind` (port 0 picks a free port) and serves the mock API on the
/// current tokio runtime with 2 workers until [`MockApiHandle::stop`].
///
/// Signals are left to the caller (the binary handles SIGTERM itself), so an
/// embedding test's Ctrl-C handling is not hijacked.
pub async fn start(config: MockApiConfig, bind: SocketAddr) -> std::io::Result<MockApiHandle> {
    let state = config.into_state();
    let app_state = state.clone();
    let server = HttpServer::new(move || App::new().configure(configure(app_state.clone())))
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(bind)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("mock API bound no address"))?;
    let server = server.run();
    let server_handle = server.handle();
    let join = tokio::spawn(server);
    Ok(MockApiHandle {
        addr,
        server: server_handle,
        join: Some(join),
        state,
    })
}

/// A running mock API; dropping it without [`stop`](Self::stop) still asks
/// the server to shut down (without waiting).
#[derive(Debug)]
pub struct MockApiHandle {
    addr: SocketAddr,
    server: ServerHandle,
    join: Option<JoinHandle<std::io::Result<()>>>,
    state: web::Data<MockState>,
}

impl MockApiHandle {
    /// Base URL, e.g. `http://127.0.0.1:41234`; a wildcard bind address is
    /// reported as loopback so the URL is always connectable.
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Direct access to the state (faults, dataset, request log) for
    /// in-process tests that prefer not to go through `/_admin`.
    pub fn state(&self) -> &MockState {
        &self.state
    }

    /// Gracefully stops the server and waits until it has exited.
    pub async fn stop(mut self) {
        self.server.stop(true).await;
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

impl Drop for MockApiHandle {
    fn drop(&mut self) {
        if self.join.is_some() {
            // The stop command is sent eagerly; the returned future only
            // waits for completion, which a destructor cannot do.
            drop(self.server.stop(false));
        }
    }
}
