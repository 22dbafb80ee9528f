//! The admin HTTP server of a worker (actix-web, in the worker's actix system):
//! `/health/live`, `/health/ready` (503 until registered and from the shutdown signal on,
//! with the reason in JSON) and `/metrics` (Prometheus text format 0.0.4).

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::metrics::Metrics;

/// How long a graceful stop waits for open requests.
const SHUTDOWN_TIMEOUT_SECS: u64 = 3;

/// A running admin server; [`stop`](Self::stop) it before the process exits.
pub struct AdminServer {
    /// The bound address (the configured one, with port 0 resolved).
    pub addr: SocketAddr,
    handle: ServerHandle,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    /// Stops accepting, finishes open requests (a few seconds at most) and waits for the end.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.served.await;
    }
}

/// Binds `addr` and serves `metrics`. Must be called inside the actix system.
pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<AdminServer> {
    let listener = std::net::TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let data = web::Data::from(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/health/live", web::get().to(live))
            .route("/health/ready", web::get().to(ready))
            .route("/metrics", web::get().to(render))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let served = tokio::spawn(server);
    Ok(AdminServer {
        addr,
        handle,
        served,
    })
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"live": true}))
}

async fn ready(metrics: web::Data<Metrics>) -> HttpResponse {
    let leases = metrics.leases_held.get();
    match metrics.readiness() {
        Ok(()) => HttpResponse::Ok().json(json!({"ready": true, "leases_held": leases})),
        Err(reason) => HttpResponse::ServiceUnavailable().json(json!({
            "ready": false,
            "reason": reason,
            "leases_held": leases,
        })),
    }
}

async fn render(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(apitap_common::metrics::CONTENT_TYPE)
        .body(metrics.snapshot().to_text())
}
