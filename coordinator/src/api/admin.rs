//! The admin HTTP server of a coordinator node (actix-web): `/health/live`, `/health/ready`
//! and `/metrics` (Prometheus text format 0.0.4), and the JSON API and web console of
//! [`crate::http`].
//!
//! Ready means this node can take part in serving the cluster: it knows a leader for the
//! current term and, if it is that leader, a quorum acknowledged it recently (openraft 0.9
//! leaders do not step down on their own when cut off from the followers).
//!
//! The server runs beside the gRPC server on the node's tokio runtime (actix-server starts
//! its own worker thread) and stops when the node's shutdown signal fires; the leader-change
//! counter of [`crate::metrics`] runs with it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::{web, App, HttpResponse, HttpServer};
use apitap_common::shutdown::ShutdownSignal;
use openraft::{BasicNode, RaftMetrics, ServerState};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::node::Node;

/// How long a graceful stop waits for open requests.
const SHUTDOWN_TIMEOUT_SECS: u64 = 3;

/// A running admin server.
#[derive(Debug)]
pub struct AdminServer {
    /// The bound address (the configured one, with port 0 resolved).
    pub addr: SocketAddr,
    /// Stops the server and the leader-change counter once shutdown fires.
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Resolves once the server has stopped (after the shutdown signal).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Binds `node.config.admin_addr` and serves until `shutdown` fires. Must be called on a
/// tokio runtime.
pub fn start(node: Arc<Node>, shutdown: ShutdownSignal) -> std::io::Result<AdminServer> {
    let listener = std::net::TcpListener::bind(node.config.admin_addr)?;
    let addr = listener.local_addr()?;
    let data = web::Data::from(node.clone());
    let settings = web::Data::new(crate::http::Settings {
        mode: node.config.auth_mode().map_err(std::io::Error::other)?,
        max_list: node.config.http_max_list,
    });
    let max_body = node.config.http_max_body as usize;
    let streams = web::Data::new(crate::http::events::Streams::new(
        node.config.http_max_streams as usize,
    ));
    let cors = crate::http::cors::Cors::new(node.config.http_cors_origin.as_deref())
        .map_err(std::io::Error::other)?;
    let server = HttpServer::new(move || {
        let decorate = cors.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                let allowed = decorate.allowed(req.request());
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
                    crate::http::cors::Cors::decorate(allowed, res.headers_mut());
                    Ok(res)
                }
            })
            .app_data(web::Data::new(cors.clone()))
            .app_data(data.clone())
            .app_data(settings.clone())
            .app_data(streams.clone())
            .app_data(web::FormConfig::default().limit(max_body))
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(web::JsonConfig::default().limit(max_body))
            .route("/health/live", web::get().to(live))
            .route("/health/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics))
            .configure(crate::http::configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)?
    .run();
    let handle = server.handle();
    let served = tokio::spawn(server);
    let leader_watch = tokio::spawn(super::exposition::watch_leader(
        node.clone(),
        shutdown.clone(),
    ));
    let rate_history = tokio::spawn(crate::history::rates::sample(node, shutdown.clone()));
    let mut shutdown = shutdown;
    let task = tokio::spawn(async move {
        shutdown.wait().await;
        handle.stop(true).await;
        let _ = served.await;
        let _ = leader_watch.await;
        let _ = rate_history.await;
    });
    Ok(AdminServer { addr, task })
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"live": true}))
}

async fn ready(node: web::Data<Node>) -> HttpResponse {
    let m = node.raft_metrics();
    let body = |ready: bool, reason: Option<&str>| {
        json!({
            "ready": ready,
            "reason": reason,
            "node_id": node.id,
            "role": role(m.state),
            "leader_id": m.current_leader,
            "term": m.current_term,
        })
    };
    match not_ready_reason(&m, node.id, quorum_timeout(&node)) {
        None => HttpResponse::Ok().json(body(true, None)),
        Some(reason) => HttpResponse::ServiceUnavailable().json(body(false, Some(&reason))),
    }
}

async fn metrics(node: web::Data<Node>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(apitap_common::metrics::CONTENT_TYPE)
        .body(super::exposition::snapshot(&node).to_text())
}

/// A leader that no quorum acknowledged for this long is not trusted to be the leader: a
/// few election timeouts, at least a second.
fn quorum_timeout(node: &Node) -> Duration {
    (node.config.election_timeout * 4).max(Duration::from_secs(1))
}

fn role(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// Why node `id` with Raft metrics `m` is not ready, or `None` when it is.
fn not_ready_reason(
    m: &RaftMetrics<u64, BasicNode>,
    id: u64,
    quorum_timeout: Duration,
) -> Option<String> {
    if let Err(e) = &m.running_state {
        return Some(format!("raft stopped: {e}"));
    }
    let Some(leader) = m.current_leader else {
        return Some("no leader".into());
    };
    if leader != id {
        return None;
    }
    match m.millis_since_quorum_ack {
        Some(ms) if u128::from(ms) <= quorum_timeout.as_millis() => None,
        Some(ms) => Some(format!(
            "leader without quorum: last acknowledged {ms} ms ago"
        )),
        None => Some("leader not yet acknowledged by a quorum".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(leader: Option<u64>, quorum_ack_ms: Option<u64>) -> RaftMetrics<u64, BasicNode> {
        let mut m = RaftMetrics::new_initial(1);
        m.current_leader = leader;
        m.millis_since_quorum_ack = quorum_ack_ms;
        m
    }

    #[test]
    fn ready_needs_a_leader_and_a_leader_needs_a_recent_quorum() {
        let t = Duration::from_secs(1);
        assert_eq!(
            not_ready_reason(&metrics(None, None), 1, t).as_deref(),
            Some("no leader")
        );
        assert_eq!(not_ready_reason(&metrics(Some(2), None), 1, t), None);
        assert_eq!(not_ready_reason(&metrics(Some(1), Some(40)), 1, t), None);
        assert!(not_ready_reason(&metrics(Some(1), Some(5_000)), 1, t)
            .unwrap()
            .contains("without quorum"));
        assert!(not_ready_reason(&metrics(Some(1), None), 1, t).is_some());
    }
}
