//! Starting a coordinator node: RocksDB, the Raft instance, the gRPC server with its auth
//! layer, the admin server and the scheduler, wired together in one place. Nothing else
//! depends on this module.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use apitap_common::shutdown::ShutdownSignal;
use apitap_common::telemetry::TelemetryGuard;
use apitap_proto::limits::MAX_GRPC_MESSAGE_BYTES;
use apitap_proto::v1::access_service_server::AccessServiceServer;
use apitap_proto::v1::control_service_server::ControlServiceServer;
use apitap_proto::v1::raft_service_server::RaftServiceServer;
use apitap_proto::v1::worker_service_server::WorkerServiceServer;
use openraft::{BasicNode, SnapshotPolicy};
use tokio::net::TcpListener;

use crate::api::{access::AccessApi, control::ControlApi, raft::RaftApi, worker::WorkerApi};
use crate::auth::layer::AuthLayer;
use crate::config::Config;
use crate::limits;
use crate::liveness::Liveness;
use crate::node::Node;
use crate::raft::election::Election;
use crate::raft::log_store::LogStore;
use crate::raft::network::{Network, NetworkOptions};
use crate::raft::state_machine::StateMachine;
use crate::raft::{store, Raft};

/// Makes `dir` readable by its owner only: it holds the Raft log and secrets.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| anyhow::anyhow!("cannot make {} private (0700): {e}", dir.display()))?;
    }
    Ok(())
}

/// How long a stopping node lets its gRPC calls under way finish.
const SERVER_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Connection timing to the peers: back-off from the Raft timing, keep-alive from the flags.
fn network_options(config: &Config) -> NetworkOptions {
    NetworkOptions {
        keepalive_interval: config.raft_keepalive,
        keepalive_timeout: config.raft_keepalive_timeout,
        ..NetworkOptions::new(config.raft_heartbeat, config.election_timeout)
    }
}

/// Starts a node and serves until `shutdown` fires; returns after a clean stop.
pub async fn run(
    config: Config,
    mut shutdown: ShutdownSignal,
    telemetry: &TelemetryGuard,
) -> anyhow::Result<()> {
    config.validate()?;
    let tls = config.tls()?;
    let mode = config.auth_mode()?;
    let secrets = config.secret_box()?;
    std::fs::create_dir_all(&config.data_dir)?;
    private_dir(&config.data_dir)?;
    let db = store::open(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let listener = TcpListener::bind(config.grpc_addr).await?;
    let bound = listener.local_addr()?;
    let addr = config
        .advertise_addr
        .clone()
        .unwrap_or_else(|| bound.to_string());
    let node = start_node(&config, &db, addr, tls.clone(), secrets).await?;
    let raft = node.raft.clone();

    initialise(&config, &node).await?;

    let admin = crate::api::admin::start(node.clone(), shutdown.clone()).map_err(|e| {
        anyhow::anyhow!("cannot serve the admin address {}: {e}", config.admin_addr)
    })?;
    println!(
        "{}",
        serde_json::json!({"event": "listening", "node_id": config.id, "grpc": node.addr, "admin": admin.addr.to_string()})
    );
    tracing::info!(node_id = config.id, addr = %node.addr, data_dir = %config.data_dir.display(), tls = tls.is_some(), secrets_key = node.secrets.current().unwrap_or("none"), "coordinator started");

    // A weak reference: a push still under way at exit must not keep RocksDB open.
    let metrics_export = telemetry.export_metrics({
        let node = Arc::downgrade(&node);
        move || {
            node.upgrade()
                .map(|node| crate::api::exposition::snapshot(&node))
                .unwrap_or_default()
        }
    });
    let scheduler = tokio::spawn(crate::scheduler::run(node.clone(), shutdown.clone()));
    let elections = tokio::spawn(crate::raft::election::run(
        raft.clone(),
        node.id,
        node.election.clone(),
        node.network.clone(),
        shutdown.clone(),
    ));
    // The gRPC server outlives the shutdown signal: a stopping leader still answers the
    // vote of the successor it hands leadership to.
    let server_stop = apitap_common::shutdown::Shutdown::new();
    let served = tokio::spawn(serve_grpc(
        &node,
        listener,
        tls.as_ref(),
        mode,
        &server_stop.signal(),
    )?);
    shutdown.wait().await;
    let started = tokio::time::Instant::now();
    tracing::info!("shutting down: handing off leadership, then stopping the servers and raft");
    let _ = elections.await;
    let _ = scheduler.await;
    hand_off(&node, config.shutdown_timeout / 2).await;
    let handed_off_ms = started.elapsed().as_millis() as u64;
    server_stop.trigger();
    stop_servers(
        served,
        admin,
        &raft,
        metrics_export,
        started + config.shutdown_timeout,
    )
    .await;
    tracing::info!(handed_off_ms, "servers and raft stopped");
    drop(node);
    drop(db);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "coordinator stopped"
    );
    Ok(())
}

/// With `--init`: makes this node a one-member cluster if it is not initialised yet, and
/// (re)creates the first admin token while the cluster has none, also after a crash between
/// `initialize` and the token's commit. The token is made in the background: it waits for
/// this node to lead, and must not hold up a shutdown.
async fn initialise(config: &Config, node: &Arc<Node>) -> anyhow::Result<()> {
    let initialised_here = config.init && !node.raft.is_initialized().await?;
    if initialised_here {
        let members = BTreeMap::from([(
            config.id,
            BasicNode {
                addr: node.addr.clone(),
            },
        )]);
        node.raft.initialize(members).await?;
        tracing::info!(node_id = config.id, "initialized a new cluster");
    }
    let tokenless = node.state().state.tokens.is_empty();
    if initialised_here || (config.init && tokenless) {
        let (node, data_dir) = (node.clone(), config.data_dir.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::auth::bootstrap::first_admin_token(&node, &data_dir).await {
                tracing::error!(error = %e, "could not create the first admin token");
            }
        });
    }
    Ok(())
}

/// Stops the gRPC server (its calls under way get [`SERVER_GRACE`]), the admin server,
/// Raft and the metrics export, abandoning whatever still runs at `deadline`.
async fn stop_servers(
    served: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    admin: crate::api::admin::AdminServer,
    raft: &crate::raft::Raft,
    metrics_export: Option<apitap_common::telemetry::MetricsExport>,
    deadline: tokio::time::Instant,
) {
    // A connection kept open by a peer or a client must not hold the exit.
    let grace = (tokio::time::Instant::now() + SERVER_GRACE).min(deadline);
    if tokio::time::timeout_at(grace, served).await.is_err() {
        tracing::info!("gRPC calls still open after {SERVER_GRACE:?}: closing them");
    }
    let stopped = tokio::time::timeout_at(deadline, async {
        admin.stopped().await;
        let _ = raft.shutdown().await;
        if let Some(export) = metrics_export {
            export.finish().await;
        }
    })
    .await;
    if stopped.is_err() {
        tracing::warn!("shutdown timeout reached: exiting with calls still under way");
    }
}

/// Hands leadership to another voter if this node leads, within `within`; logs the outcome.
async fn hand_off(node: &Node, within: std::time::Duration) {
    if !node.is_leader() {
        return;
    }
    let t = std::time::Instant::now();
    node.election.step_down();
    // A leader younger than its vote lease would refuse its successor's vote.
    tokio::time::sleep(node.election.lease_left().min(within / 4)).await;
    match crate::raft::handoff::hand_off(&node.raft, node.id, &node.network, within).await {
        Ok(successor) => tracing::info!(
            successor,
            elapsed_ms = t.elapsed().as_millis() as u64,
            "handed leadership off"
        ),
        Err(e) => tracing::warn!("no leadership hand-off: {e}"),
    }
}

/// The Raft instance on `db` and the node around it.
async fn start_node(
    config: &Config,
    db: &Arc<rocksdb::DB>,
    addr: String,
    tls: Option<apitap_proto::tls::Tls>,
    secrets: crate::secrets::SecretBox,
) -> anyhow::Result<Arc<Node>> {
    let log_store = LogStore::new(db.clone());
    let sm = StateMachine::open(db.clone())
        .map_err(|e| anyhow::anyhow!("cannot load the state machine: {e}"))?;
    let state = sm.shared();
    let heartbeat = config.raft_heartbeat.as_millis() as u64;
    let election = config.election_timeout.as_millis() as u64;
    // openraft's own election timer is off: `raft::election` times elections, with a
    // pre-vote. openraft still uses `election_timeout_max` as the lease in which a node
    // refuses votes after hearing from its leader (kept equal to the pre-vote's window)
    // and `election_timeout_min` as a vote call's deadline.
    let raft_config = openraft::Config {
        cluster_name: "apitap".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: (election / 2).max(heartbeat + 1),
        election_timeout_max: election,
        enable_elect: false,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: 500,
        install_snapshot_timeout: 5_000,
        ..Default::default()
    }
    .validate()?;
    let network = Network::new(config.id, tls, network_options(config));
    let raft = Raft::new(
        config.id,
        Arc::new(raft_config),
        network.clone(),
        log_store.clone(),
        sm,
    )
    .await?;
    Ok(Arc::new(Node {
        id: config.id,
        addr,
        raft,
        state,
        log_store,
        config: config.clone(),
        liveness: Mutex::new(Liveness::default()),
        budgets: Mutex::default(),
        backoffs: tokio::sync::broadcast::channel(256).0,
        metrics: Arc::new(crate::metrics::Metrics::default()),
        secrets,
        election: Arc::new(Election::new(config.election_timeout)),
        network,
        history: crate::history::History::new(
            config.history_elections as usize,
            config.history_rate_keys as usize,
        ),
    }))
}

/// The gRPC server of `node` on `listener`: every service behind the auth layer, with the
/// message, time and concurrency limits; it stops when `shutdown` fires.
fn serve_grpc(
    node: &Arc<Node>,
    listener: TcpListener,
    tls: Option<&apitap_proto::tls::Tls>,
    mode: crate::config::AuthMode,
    shutdown: &ShutdownSignal,
) -> anyhow::Result<impl std::future::Future<Output = Result<(), tonic::transport::Error>>> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server_shutdown = {
        let mut s = shutdown.clone();
        async move { s.wait().await }
    };
    let mut server = tonic::transport::Server::builder()
        .timeout(limits::SERVER_TIMEOUT)
        .concurrency_limit_per_connection(limits::CONCURRENT_CALLS_PER_CONNECTION);
    if let Some(tls) = tls {
        server = server
            .tls_config(tls.server())
            .map_err(|e| anyhow::anyhow!("bad TLS settings: {e}"))?;
    }
    let max = MAX_GRPC_MESSAGE_BYTES;
    Ok(server
        .layer(AuthLayer::new(mode, node.state.clone()))
        .add_service(
            ControlServiceServer::new(ControlApi { node: node.clone() })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            AccessServiceServer::new(AccessApi { node: node.clone() })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            WorkerServiceServer::new(WorkerApi { node: node.clone() })
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            RaftServiceServer::new(RaftApi { node: node.clone() })
                .max_decoding_message_size(limits::MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(limits::MAX_RAFT_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, server_shutdown))
}
