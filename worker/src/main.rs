use std::sync::Arc;

use actix::Actor;
use apitap_worker::agent::{Agent, Drain};
use apitap_worker::config::Config;
use apitap_worker::metrics::Metrics;
use clap::Parser;
use tokio::sync::watch;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    // Fail points from the FAILPOINTS environment variable (test builds only). Kept for the
    // whole process: `exit` below never tears it down.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let mut telemetry =
        apitap_common::telemetry::init(config.log_format, "info", &config.worker_id());
    let exporter = &telemetry;
    // actix on a multi-threaded tokio runtime, so reqwest, sqlx, tonic and DataFusion share it.
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    });
    let code = system.block_on(async move {
        let id = config.worker_id();
        let tls = config.tls()?;
        let local_root = apitap_worker::sink::LocalRoot::new(config.local_sink_root.as_deref())
            .map_err(anyhow::Error::msg)?;
        if config.local_sink_root.is_none() {
            tracing::warn!("no --local-sink-root: SQLite and local files sinks write wherever a pipeline's spec says");
        }
        // Installed before the "started" line, so that an early SIGTERM drains too.
        let os_signal = apitap_common::shutdown::wait_for_os_signal();
        let metrics = Arc::new(Metrics::new());
        let admin = apitap_worker::admin::start(config.admin_addr, metrics.clone()).map_err(|e| {
            anyhow::anyhow!("cannot serve the admin address {}: {e}", config.admin_addr)
        })?;
        let metrics_export = exporter.export_metrics({
            let metrics = metrics.clone();
            move || metrics.snapshot()
        });
        let (drained_tx, mut drained) = watch::channel(false);
        let agent = Agent::new(
            id.clone(),
            config.slots,
            config.coordinators.clone(),
            drained_tx,
            config.ignore_revocations(),
        )
        .with_metrics(metrics.clone())
        .with_egress(Arc::new(config.egress()))?
        .with_transform_limits(config.transform_limits())
        .with_local_root(local_root)
        .with_sink_pools(apitap_worker::sink::SinkPools::new(config.sink_connections))
        .with_batch_memory(config.max_batched_records)
        .with_tls(tls)
        .start();
        println!("{}", serde_json::json!({"event": "started", "worker_id": id, "admin": admin.addr.to_string(), "failpoints": cfg!(feature = "failpoints")}));
        tracing::info!(worker = %id, slots = config.slots, coordinators = ?config.coordinators, "worker started");
        os_signal.await;
        // Not ready from here on, before the agent even hears of the drain.
        metrics.draining.set(1);
        let started = std::time::Instant::now();
        tracing::info!(timeout = ?config.drain_timeout, "shutdown signal: draining");
        agent.do_send(Drain);
        let finished = tokio::time::timeout(config.drain_timeout, drained.wait_for(|d| *d)).await;
        let code = match finished {
            Ok(_) => {
                tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "drained; leases released");
                0
            }
            Err(_) => {
                tracing::error!(timeout = ?config.drain_timeout, "drain did not finish in time; exiting with leases held");
                1
            }
        };
        admin.stop().await;
        if let Some(export) = metrics_export {
            export.finish().await;
        }
        anyhow::Ok(code)
    })?;
    // `exit` skips destructors: flush the last spans first.
    telemetry.shutdown();
    std::process::exit(code);
}
