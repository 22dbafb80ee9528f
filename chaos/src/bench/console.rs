//! `apitap-chaos bench console`: how fast a coordinator answers the JSON API and renders the
//! web console with a large state: `--runs` runs of a 3-shard pipeline (left pending: no
//! real worker takes them) and `--workers` registered simulated workers, on one insecure
//! coordinator, and `--rate-keys` rate-limit keys in use by the simulated workers, measured
//! once the leader holds `--rate-samples` samples of each (the rate-limit page's charts).
//! Each route is requested `--requests` times one after another over HTTP (keep-alive);
//! the figures are latencies in ms as the client sees them, and body sizes. The run's event
//! stream is measured as the time to its first event.

use std::time::Instant;

use apitap_proto::v1::worker_service_client::WorkerServiceClient;
use apitap_proto::v1::{BudgetRequest, RegisterRequest, SetRateLimitRequest, StartRunRequest};
use serde_json::{json, Value};

use super::control::{channel_with, control, ms, r1, submit, PROFILE};
use crate::stats::summary;
use crate::testbed::TestCluster;

/// Options of [`console`].
pub struct ConsoleBench {
    pub runs: u32,
    pub workers: u32,
    pub requests: usize,
    pub rate_keys: u32,
    pub rate_samples: usize,
}

const PIPELINE: &str = "bench-console";

/// See the module doc; returns one JSON object of figures.
pub async fn console(b: ConsoleBench) -> anyhow::Result<Value> {
    anyhow::ensure!(
        b.runs > 0 && b.requests > 0,
        "--runs and --requests must be at least 1"
    );
    // Each measured event stream stays open until the server's next write finds its client
    // gone: room for all of them.
    let cluster = TestCluster::builder()
        .coordinators(1)
        .workers(0)
        .coordinator_env("APITAP_HTTP_MAX_STREAMS", "10000")
        .start()
        .await?;
    let addr = cluster.coordinator_addrs()[0].clone();
    let admin = cluster.coordinators[0]
        .admin
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the coordinator printed no admin address"))?;

    let filled = Instant::now();
    let mut workers = WorkerServiceClient::new(channel_with(&addr, None).await?);
    for i in 0..b.workers {
        let id = format!("sim-{:03}", i + 1);
        workers
            .register(RegisterRequest {
                worker_id: id.clone(),
                addr: format!("sim://{id}"),
                slots: 4,
                instance: String::new(),
            })
            .await?;
    }
    let mut ctl = control(&addr).await?;
    let db = cluster.out_path("bench.db");
    let yaml = format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: {PIPELINE} }}
spec:
  shards: {{ param: ids, range: {{ start: 1, end: 300, count: 3 }} }}
  source:
    http:
      url: "{}/v1/limit_offset?from_id={{{{ shard.start }}}}&to_id={{{{ shard.end }}}}"
      records: $.data
      pagination: {{ kind: limit_offset, size: 50 }}
  sink:
    sqlite: {{ path: "{}", table: bench }}
"#,
        cluster.mock.url(),
        db.display()
    );
    let first = submit(&mut ctl, PIPELINE, yaml).await?;
    let mut last = first;
    for _ in 1..b.runs {
        let r = StartRunRequest {
            pipeline: PIPELINE.into(),
            namespace: String::new(),
        };
        last = ctl.start_run(r).await?.into_inner().run_id;
    }
    for k in 0..b.rate_keys {
        let key = format!("bench-{k:03}.example");
        ctl.set_rate_limit(SetRateLimitRequest {
            key: key.clone(),
            rps: 50.0,
            burst: 10,
        })
        .await?;
    }
    let fill_ms = ms(filled.elapsed());
    let http = reqwest::Client::new();
    let samples = use_rate_keys(&mut workers, &http, &admin, &b).await?;

    let mut routes = serde_json::Map::new();
    for path in [
        "/api/cluster".to_string(),
        "/api/workers".into(),
        "/api/pipelines".into(),
        "/api/runs".into(),
        "/api/runs?limit=1000".into(),
        format!("/api/runs/{last}"),
        "/console/cluster".into(),
        "/console/workers".into(),
        "/console/pipelines".into(),
        "/console/runs".into(),
        format!("/console/runs/{last}"),
        "/api/ratelimits".into(),
        "/console/ratelimits".into(),
    ] {
        let url = format!("http://{admin}{path}");
        let (mut lat, mut bytes) = (Vec::with_capacity(b.requests), 0);
        for _ in 0..b.requests {
            let t = Instant::now();
            let resp = http.get(&url).send().await?;
            anyhow::ensure!(resp.status().is_success(), "{path}: {}", resp.status());
            bytes = resp.bytes().await?.len();
            lat.push(ms(t.elapsed()));
        }
        routes.insert(path, json!({"ms": summary(&lat), "bytes": bytes}));
    }
    let events = format!("/api/runs/{last}/events");
    let mut first_event = Vec::with_capacity(b.requests);
    for _ in 0..b.requests {
        let t = Instant::now();
        let mut resp = http.get(format!("http://{admin}{events}")).send().await?;
        anyhow::ensure!(resp.status().is_success(), "{events}: {}", resp.status());
        anyhow::ensure!(resp.chunk().await?.is_some(), "{events}: no event");
        first_event.push(ms(t.elapsed()));
    }
    routes.insert(
        format!("{events} (first event)"),
        json!({"ms": summary(&first_event)}),
    );
    Ok(json!({
        "bench": "console",
        "profile": PROFILE,
        "runs": b.runs,
        "shards": b.runs * 3,
        "workers": b.workers,
        "requests_per_route": b.requests,
        "fill_s": r1(fill_ms / 1000.0),
        "rate_keys": b.rate_keys,
        "rate_samples_per_key": samples,
        "routes": routes,
    }))
}

/// Has the simulated workers ask for and report use of every rate-limit key until the
/// leader holds `rate_samples` samples of each; returns the fewest samples a key has.
async fn use_rate_keys(
    workers: &mut WorkerServiceClient<tonic::transport::Channel>,
    http: &reqwest::Client,
    admin: &str,
    b: &ConsoleBench,
) -> anyhow::Result<usize> {
    if b.rate_keys == 0 {
        return Ok(0);
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(30 + 6 * b.rate_samples as u64);
    loop {
        for k in 0..b.rate_keys {
            for w in 0..b.workers.clamp(1, 3) {
                workers
                    .acquire_budget(BudgetRequest {
                        worker_id: format!("sim-{:03}", w + 1),
                        key: format!("bench-{k:03}.example"),
                        wants_rps: 30.0,
                        has_rps: 0.0,
                        used: 20,
                    })
                    .await?;
            }
        }
        let v: Value = http
            .get(format!("http://{admin}/api/ratelimits"))
            .send()
            .await?
            .json()
            .await?;
        let fewest = v["history"]
            .as_array()
            .filter(|h| h.len() == b.rate_keys as usize)
            .and_then(|h| {
                h.iter()
                    .filter_map(|s| s["samples"].as_array().map(Vec::len))
                    .min()
            })
            .unwrap_or(0);
        if fewest >= b.rate_samples {
            return Ok(fewest);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the leader took {fewest} of {} samples per key in time",
            b.rate_samples
        );
        // Renew about as often as workers do (grants live one second).
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
