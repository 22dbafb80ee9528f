//! `apitap-chaos bench console`: how fast a coordinator answers the JSON API and renders the
//! web console with a large state: `--runs` runs of a 3-shard pipeline (left pending: no
//! real worker takes them) and `--workers` registered simulated workers, on one insecure
//! coordinator. Each route is requested `--requests` times one after another over HTTP
//! (keep-alive); the figures are latencies in ms as the client sees them, and body sizes.

use std::time::Instant;

use apitap_proto::v1::worker_service_client::WorkerServiceClient;
use apitap_proto::v1::{RegisterRequest, StartRunRequest};
use serde_json::{json, Value};

use super::control::{channel_with, control, ms, r1, submit, PROFILE};
use crate::stats::summary;
use crate::testbed::TestCluster;

/// Options of [`console`].
pub struct ConsoleBench {
    pub runs: u32,
    pub workers: u32,
    pub requests: usize,
}

const PIPELINE: &str = "bench-console";

/// See the module doc; returns one JSON object of figures.
pub async fn console(b: ConsoleBench) -> anyhow::Result<Value> {
    anyhow::ensure!(
        b.runs > 0 && b.requests > 0,
        "--runs and --requests must be at least 1"
    );
    let cluster = TestCluster::builder()
        .coordinators(1)
        .workers(0)
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
    let fill_ms = ms(filled.elapsed());

    let http = reqwest::Client::new();
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
    Ok(json!({
        "bench": "console",
        "profile": PROFILE,
        "runs": b.runs,
        "shards": b.runs * 3,
        "workers": b.workers,
        "requests_per_route": b.requests,
        "fill_s": r1(fill_ms / 1000.0),
        "routes": routes,
    }))
}
