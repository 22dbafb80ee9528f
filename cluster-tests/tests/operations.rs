//! What an operator sees on real processes: `/metrics` that move during a run and add up
//! to the dataset, readiness that turns 503 while a worker drains and on a coordinator
//! without a leader, status 0 after SIGTERM from every binary, and each shard's trace (from
//! the coordinator's grant through the worker's stages) and the metrics arriving at an OTLP
//! collector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apitap_chaos::testbed::process::Proc;
use apitap_chaos::testbed::{bins, wait, TestCluster};
use apitap_cluster_tests::admin::{self, Scrape};
use apitap_cluster_tests::fixture::{self, assert_terminates, slow_source};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;

/// A pipeline of `shards` id ranges over `records` mock records, `size` per page, into a
/// SQLite file in the cluster's folder.
fn pipeline(cluster: &TestCluster, name: &str, records: u64, shards: u32, size: u32) -> String {
    let db = cluster.out_path(format!("{name}.db"));
    apitap_cluster_tests::pipelines::sharded_sqlite(name, records, shards, size, &db)
}

fn coordinator_admin(cluster: &TestCluster, i: usize) -> String {
    cluster.coordinators[i]
        .admin
        .clone()
        .expect("the coordinator printed its admin address")
}

fn worker_admin(cluster: &TestCluster, i: usize) -> String {
    cluster.workers[i]
        .admin
        .clone()
        .expect("the worker printed its admin address")
}

/// Waits until `GET path` on `addr` answers `status`; returns the body.
async fn wait_status(
    addr: &str,
    path: &str,
    status: u16,
    timeout: Duration,
) -> anyhow::Result<Value> {
    wait::until_async(
        &format!("{path} on {addr} to answer {status}"),
        timeout,
        || async {
            match admin::get(addr, path).await {
                Ok((s, body)) if s == status => Some(body),
                _ => None,
            }
        },
    )
    .await
}

/// Waits up to 30 s for the admin server at `addr` to answer ready (200); returns the answer.
async fn wait_ready(addr: &str) -> anyhow::Result<Value> {
    wait_status(addr, "/health/ready", 200, Duration::from_secs(30)).await
}

/// The sum of `name` over every worker's scrape.
async fn workers_sum(
    cluster: &TestCluster,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for i in 0..cluster.workers.len() {
        total += admin::scrape(&worker_admin(cluster, i))
            .await?
            .sum(name, labels);
    }
    Ok(total)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_during_a_run_and_count_every_loaded_record() -> anyhow::Result<()> {
    const RECORDS: u64 = 2_000;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .workers(2)
        .records(RECORDS)
        .start()
        .await?;
    let coordinator = coordinator_admin(&cluster, 0);
    for i in 0..cluster.workers.len() {
        wait_ready(&worker_admin(&cluster, i)).await?;
    }
    let idle = admin::scrape(&coordinator).await?;
    assert_eq!(idle.value("apitap_raft_is_leader"), Some(1.0));
    assert_eq!(idle.sum("apitap_raft_role", &[("role", "leader")]), 1.0);
    assert!(idle.value("apitap_raft_leader_changes_total") >= Some(1.0));
    assert_eq!(idle.types["apitap_leases_granted_total"], "counter");
    assert_eq!(
        idle.types["apitap_lease_grant_duration_seconds"],
        "histogram"
    );

    // 4 shards of 500 records, 25 per page, 150 ms a page: several seconds of run to watch.
    slow_source(&cluster, 150);
    let run = cluster.submit("metrics", &pipeline(&cluster, "metrics", RECORDS, 4, 25))?;
    let during = wait::until_async("pages fetched mid-run", Duration::from_secs(60), || async {
        let pages = workers_sum(&cluster, "apitap_worker_pages_fetched_total", &[])
            .await
            .ok()?;
        (pages > 0.0).then_some(pages)
    })
    .await?;
    let mid = admin::scrape(&coordinator).await?;
    let info = cluster.run_info(run)?;
    assert!(
        during < 80.0 && info["state"] == "running",
        "the run ended before it could be watched: {info:#}"
    );
    assert!(
        mid.value("apitap_leases_granted_total") >= Some(1.0),
        "{mid:#?}"
    );
    assert!(mid.value("apitap_lease_grant_duration_seconds_count") >= Some(1.0));
    assert_eq!(mid.sum("apitap_runs", &[("state", "running")]), 1.0);
    assert!(mid.sum("apitap_shards", &[("state", "leased")]) >= 1.0);
    assert_eq!(mid.value("apitap_pipelines"), Some(1.0));
    assert_eq!(mid.value("apitap_workers_live"), Some(2.0));
    // Published on the agent's heartbeat tick.
    wait::until_async(
        "a worker to report a held lease",
        Duration::from_secs(10),
        || async {
            let held = workers_sum(&cluster, "apitap_worker_leases_held", &[])
                .await
                .ok()?;
            (held >= 1.0).then_some(())
        },
    )
    .await?;
    assert!(
        workers_sum(
            &cluster,
            "apitap_worker_http_requests_total",
            &[("status", "2xx")]
        )
        .await?
            >= 1.0
    );

    let info = fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    let loaded = workers_sum(&cluster, "apitap_worker_records_loaded_total", &[]).await?;
    assert_eq!(loaded, RECORDS as f64, "records loaded");
    assert_eq!(
        workers_sum(&cluster, "apitap_worker_records_fetched_total", &[]).await?,
        RECORDS as f64
    );
    assert_eq!(
        workers_sum(&cluster, "apitap_worker_records_transformed_total", &[]).await?,
        RECORDS as f64
    );
    let pages = workers_sum(&cluster, "apitap_worker_pages_fetched_total", &[]).await?;
    assert!(pages >= (RECORDS / 25) as f64, "pages {pages}");
    // No fault but latency: one successful request per page.
    assert_eq!(
        workers_sum(
            &cluster,
            "apitap_worker_http_requests_total",
            &[("status", "2xx")]
        )
        .await?,
        pages
    );
    assert_eq!(
        workers_sum(&cluster, "apitap_worker_http_requests_total", &[]).await?,
        pages
    );
    assert_eq!(
        workers_sum(
            &cluster,
            "apitap_worker_http_request_duration_seconds_count",
            &[]
        )
        .await?,
        pages
    );
    // One commit per batch (spec.batch, by default 1 s or 10,000 records): at least one per
    // shard, and fewer than pages, a shard's 20 pages taking 3 s at 150 ms each.
    let commits = workers_sum(
        &cluster,
        "apitap_worker_batch_commit_duration_seconds_count",
        &[],
    )
    .await?;
    assert!(
        commits >= 4.0 && commits < pages,
        "{commits} commits for {pages} pages"
    );
    assert_eq!(
        workers_sum(&cluster, "apitap_worker_http_retries_total", &[]).await?,
        0.0
    );
    assert_eq!(
        workers_sum(&cluster, "apitap_worker_fence_rejections_total", &[]).await?,
        0.0
    );
    assert!(workers_sum(&cluster, "apitap_worker_fetched_bytes_total", &[]).await? > 0.0);
    assert!(
        workers_sum(
            &cluster,
            "apitap_worker_http_requests_total",
            &[("host", "127.0.0.1")]
        )
        .await?
            == pages
    );

    let end = admin::scrape(&coordinator).await?;
    assert_eq!(end.sum("apitap_runs", &[("state", "succeeded")]), 1.0);
    assert_eq!(end.sum("apitap_shards", &[("state", "succeeded")]), 4.0);
    // One grant per attempt: 4, or more if a shard was retried (SQLite busy under load).
    let attempts: u64 = info["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["attempts"].as_u64().unwrap_or(0))
        .sum();
    assert!(attempts >= 4, "{info:#}");
    assert_eq!(
        end.value("apitap_leases_granted_total"),
        Some(attempts as f64)
    );
    assert_eq!(end.value("apitap_leases_expired_total"), Some(0.0));

    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        cluster.out_path("metrics.db").display()
    ))
    .await?;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metrics")
        .fetch_one(&pool)
        .await?;
    assert_eq!(rows as u64, RECORDS);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_worker_is_not_ready_and_exits_zero() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .workers(1)
        .records(400)
        .start()
        .await?;
    let addr = worker_admin(&cluster, 0);
    let ready = wait_ready(&addr).await?;
    assert_eq!(ready["ready"], true, "{ready}");

    slow_source(&cluster, 2_000);
    cluster.submit("drain", &pipeline(&cluster, "drain", 400, 1, 50))?;
    wait::until_async(
        "the worker to hold a lease",
        Duration::from_secs(60),
        || async {
            let s = admin::scrape(&addr).await.ok()?;
            (s.value("apitap_worker_leases_held")? >= 1.0).then_some(())
        },
    )
    .await?;

    // The drain stops the lease at once (its open batch commits) and then waits for the
    // coordinator to take the lease back: with the coordinator paused, it stays draining
    // long enough to be seen.
    cluster
        .coordinator_proc(0)
        .expect("running")
        .signal(libc::SIGSTOP);
    cluster
        .worker_proc(0)
        .expect("running")
        .signal(libc::SIGTERM);
    let seen = wait_status(&addr, "/health/ready", 503, Duration::from_secs(10)).await;
    let live = admin::get(&addr, "/health/live").await;
    cluster
        .coordinator_proc(0)
        .expect("running")
        .signal(libc::SIGCONT);
    let body = seen?;
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["reason"], "draining", "{body}");
    // Still alive while it hands its lease back.
    assert_eq!(live?.0, 200);

    let proc = cluster.worker_proc(0).expect("running");
    let status = wait::until("the worker to exit", Duration::from_secs(40), || {
        proc.try_wait()
    })?;
    assert_eq!(status.code(), Some(0), "worker exit status");
    Ok(())
}

async fn three_coordinators() -> anyhow::Result<(TestCluster, usize)> {
    let cluster = fixture::cluster(3, 0).await?;
    let leader_id = cluster.wait_for_leader(Duration::from_secs(30))?;
    let leader = cluster
        .coordinators
        .iter()
        .position(|c| c.id == leader_id)
        .expect("the leader is a member");
    for i in 0..3 {
        wait_ready(&coordinator_admin(&cluster, i)).await?;
    }
    Ok((cluster, leader))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_coordinator_without_a_leader_is_not_ready() -> anyhow::Result<()> {
    let (mut cluster, leader) = three_coordinators().await?;
    let survivor = (leader + 1) % 3;
    for i in (0..3).filter(|i| *i != survivor) {
        cluster.coordinator_proc(i).expect("running").kill();
    }
    let addr = coordinator_admin(&cluster, survivor);
    let body = wait_status(&addr, "/health/ready", 503, Duration::from_secs(30)).await?;
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["reason"], "no leader", "{body}");
    assert_eq!(admin::get(&addr, "/health/live").await?.0, 200);
    let scrape = admin::scrape(&addr).await?;
    assert_eq!(scrape.value("apitap_raft_has_leader"), Some(0.0));
    assert_eq!(scrape.value("apitap_raft_is_leader"), Some(0.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_cut_off_from_its_quorum_is_not_ready() -> anyhow::Result<()> {
    let (mut cluster, leader) = three_coordinators().await?;
    for i in (0..3).filter(|i| *i != leader) {
        cluster.coordinator_proc(i).expect("running").kill();
    }
    let addr = coordinator_admin(&cluster, leader);
    let body = wait_status(&addr, "/health/ready", 503, Duration::from_secs(30)).await?;
    assert_eq!(body["ready"], false, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("quorum") || r == "no leader"),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_every_binary_with_status_zero() -> anyhow::Result<()> {
    let mut cluster = fixture::cluster(1, 1).await?;
    let worker = worker_admin(&cluster, 0);
    let coordinator = coordinator_admin(&cluster, 0);
    wait_status(&worker, "/health/ready", 200, Duration::from_secs(30)).await?;
    wait_status(&coordinator, "/health/ready", 200, Duration::from_secs(30)).await?;

    assert_terminates(
        cluster.worker_proc(0).expect("running"),
        Duration::from_secs(30),
        "apitap-worker after SIGTERM",
    );
    // A SIGTERM right after the ready line drains too (the handler is installed before it).
    cluster.start_worker(0)?;
    assert_terminates(
        cluster.worker_proc(0).expect("running"),
        Duration::from_secs(30),
        "apitap-worker after an early SIGTERM",
    );
    assert_terminates(
        cluster.coordinator_proc(0).expect("running"),
        Duration::from_secs(15),
        "apitap-coordinator after SIGTERM",
    );
    // Their admin servers are gone with them.
    assert!(admin::get(&coordinator, "/health/live").await.is_err());
    assert!(admin::get(&worker, "/health/live").await.is_err());

    let mut cmd = std::process::Command::new(bins::path("apitap-mock-api")?);
    cmd.args(["--bind", "127.0.0.1:0", "--records", "10"]);
    let (mut mock, ready) = Proc::spawn("mock-api", cmd, &cluster.logs(), Duration::from_secs(30))?;
    // SIGTERM right after its ready line.
    assert_eq!(ready["event"], "listening", "{ready}");
    assert_terminates(
        &mut mock,
        Duration::from_secs(10),
        "apitap-mock-api after SIGTERM",
    );
    Ok(())
}

/// An OTLP/gRPC collector (traces and metrics) that keeps what it receives.
#[derive(Default, Clone)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

/// A received span with its service and attributes as text.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: BTreeMap<String, String>,
}

fn text_of(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn resource_attribute(resource: &Option<Resource>, key: &str) -> String {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|a| a.key == key)
        .map(|a| text_of(&a.value))
        .unwrap_or_default()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = resource_attribute(&rs.resource, "service.name");
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text_of(&a.value)))
                        .collect(),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl Collector {
    async fn start() -> anyhow::Result<(Self, String, tokio::task::JoinHandle<()>)> {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(incoming);
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        Ok((collector, endpoint, task))
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// The last exported value of counter `name` per (service, instance), summed over the
    /// instances of `service`.
    fn counter(&self, service: &str, name: &str) -> Option<i64> {
        let received = self.metrics.lock().unwrap();
        let mut latest = BTreeMap::new();
        for rm in received.iter().flat_map(|r| &r.resource_metrics) {
            if resource_attribute(&rm.resource, "service.name") != service {
                continue;
            }
            let instance = resource_attribute(&rm.resource, "service.instance.id");
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if m.name != name {
                    continue;
                }
                let Some(metric::Data::Sum(sum)) = &m.data else {
                    continue;
                };
                let total: i64 = sum
                    .data_points
                    .iter()
                    .map(|p| match p.value {
                        Some(number_data_point::Value::AsInt(v)) => v,
                        _ => 0,
                    })
                    .sum();
                latest.insert(instance.clone(), total);
            }
        }
        (!latest.is_empty()).then(|| latest.values().sum())
    }
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &'a str) -> impl Iterator<Item = &'a ReceivedSpan> {
    spans.iter().filter(move |s| s.name == name)
}

/// Checks that each shard's trace runs from the coordinator's `start_run` through a
/// `grant_lease` to the worker's `lease` and its `fetch`, `transform` and `load`, and on to
/// the coordinator's `complete_shard`; returns what is missing. A shard may have been
/// granted more than once (a lease expiring under load): one complete grant is enough.
fn trace_gaps(spans: &[ReceivedSpan], shards: u32) -> Vec<String> {
    let Some(run) = named(spans, "start_run").find(|s| s.service == "apitap-coordinator") else {
        return vec!["no start_run span from apitap-coordinator".into()];
    };
    let mut gaps = Vec::new();
    for shard in 0..shards {
        let shard_text = shard.to_string();
        let grants: Vec<&ReceivedSpan> = named(spans, "grant_lease")
            .filter(|s| {
                s.attributes.get("shard") == Some(&shard_text) && s.parent_span_id == run.span_id
            })
            .collect();
        if grants.is_empty() {
            gaps.push(format!("shard {shard}: no grant_lease child of start_run"));
        }
        let per_grant: Vec<Vec<String>> =
            grants.iter().map(|g| grant_gaps(spans, run, g)).collect();
        if !per_grant.iter().any(Vec::is_empty) {
            gaps.extend(
                per_grant
                    .into_iter()
                    .flatten()
                    .map(|g| format!("shard {shard}: {g}")),
            );
        }
    }
    gaps
}

/// What is missing below one `grant_lease` span.
fn grant_gaps(spans: &[ReceivedSpan], run: &ReceivedSpan, grant: &ReceivedSpan) -> Vec<String> {
    let fence = grant.attributes.get("fence").cloned().unwrap_or_default();
    let mut gaps = Vec::new();
    if grant.trace_id != run.trace_id || fence.is_empty() {
        gaps.push(format!(
            "grant_lease not in the run's trace or without a fence: {grant:?}"
        ));
    }
    let Some(lease) = named(spans, "lease").find(|s| s.parent_span_id == grant.span_id) else {
        gaps.push(format!(
            "fence {fence}: no worker lease span child of its grant"
        ));
        return gaps;
    };
    if lease.service != "apitap-worker" || lease.trace_id != run.trace_id {
        gaps.push(format!("fence {fence}: lease span {lease:?}"));
    }
    for stage in ["fetch", "transform", "load"] {
        match named(spans, stage).find(|s| s.parent_span_id == lease.span_id) {
            None => gaps.push(format!("fence {fence}: no {stage} span in the lease")),
            Some(s) => {
                for key in ["pipeline", "run_id", "shard", "fence", "worker"] {
                    if !s.attributes.contains_key(key) {
                        gaps.push(format!("fence {fence}: {stage} without {key}"));
                    }
                }
                if s.attributes.get("fence") != Some(&fence) {
                    gaps.push(format!("fence {fence}: {stage} has another fence: {s:?}"));
                }
            }
        }
    }
    if !named(spans, "complete_shard").any(|s| s.parent_span_id == grant.span_id) {
        gaps.push(format!(
            "fence {fence}: no complete_shard child of its grant"
        ));
    }
    gaps
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runs_trace_and_the_metrics_reach_an_otlp_collector() -> anyhow::Result<()> {
    let (collector, endpoint, server) = Collector::start().await?;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
    ];
    let mut builder = TestCluster::builder()
        .coordinators(1)
        .workers(2)
        .records(300);
    for (k, v) in otel {
        builder = builder.coordinator_env(k, v).worker_env(k, v);
    }
    let cluster = builder.start().await?;
    let shards = 3;
    let run = cluster.submit("traced", &pipeline(&cluster, "traced", 300, shards, 50))?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(120))?;

    wait::until_async(
        "one trace per shard from start_run to complete_shard",
        Duration::from_secs(30),
        || async {
            trace_gaps(&collector.spans(), shards)
                .is_empty()
                .then_some(())
        },
    )
    .await
    .map_err(|e| {
        let spans = collector.spans();
        let names: Vec<_> = spans
            .iter()
            .map(|s| {
                (
                    &s.name,
                    &s.service,
                    s.attributes.get("shard"),
                    s.attributes.get("fence"),
                )
            })
            .collect();
        anyhow::anyhow!("{e}: {:#?}\nspans: {names:?}", trace_gaps(&spans, shards))
    })?;

    wait::until_async(
        "records loaded over OTLP equal to the dataset, and the grants counted",
        Duration::from_secs(30),
        || async {
            let loaded = collector.counter("apitap-worker", "apitap_worker_records_loaded_total");
            let granted = collector.counter("apitap-coordinator", "apitap_leases_granted_total");
            (loaded == Some(300) && granted >= Some(i64::from(shards))).then_some(())
        },
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}: loaded {:?}, granted {:?}",
            collector.counter("apitap-worker", "apitap_worker_records_loaded_total"),
            collector.counter("apitap-coordinator", "apitap_leases_granted_total")
        )
    })?;
    server.abort();
    Ok(())
}

#[test]
fn scrape_parser_reads_a_real_histogram() {
    let s = Scrape::parse(
        "# TYPE x histogram\nx_bucket{le=\"0.1\"} 1\nx_bucket{le=\"+Inf\"} 2\nx_sum 0.3\nx_count 2\n",
    )
    .unwrap();
    assert_eq!(s.value("x_count"), Some(2.0));
}
