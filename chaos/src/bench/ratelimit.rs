//! `apitap-chaos bench ratelimit`: how well a global rate budget holds and is used. Like
//! [`crate::bench::lease`], it prints a JSON line on stdout and a short summary on stderr;
//! it is not a test.
//!
//! Requests are counted where they land, in the mock API's request log (`at_ms` of every
//! `/v1` request). The clock starts at the first request (`t0`) and the measured span is
//! `[t0, t0 + seconds)`; the bench then waits 500 ms more so that every request of the span
//! has been answered and logged, and ignores what comes after.
//!
//! - worst window: the most requests any sliding 1-second window of the span holds, and
//!   its overshoot over the limit in % (negative: it stayed below the limit). One GCRA
//!   bucket with the key's rate and burst lets at most `burst - 1 + ceil(limit)` through in
//!   a second (`gcra_bound`); N workers' buckets with equal shares let through at most
//!   `fleet_bound` (see [`fleet_bound`]: each worker's burst is at least 1, and the
//!   coordinator lowers the rates to make room for that). The same
//!   figure without the first second (`worst_window_after_first_second`) separates the
//!   start-up transient, when the first grants arrive, from the steady state.
//! - utilisation: requests per second over `[t0 + 1 s, t0 + seconds)` (the first second,
//!   where the first grants and the second pipeline arrive, is left out) over the limit.
//! - budget RPCs per second per worker (`AcquireBudget` calls).
//!
//! Two modes:
//! - `real` (default): 1 coordinator and N real workers; two sharded pipelines share the
//!   key through their `spec.rate_limit` and page `/v1/limit_offset` 10 records at a time
//!   into a throwaway PostgreSQL, so demand is far above the limit. Neither the coordinator
//!   nor the worker counts `AcquireBudget` calls, and this bench adds nothing to them: the
//!   per-worker RPC figure is only the configured cadence, reported as
//!   `budget_rpcs_per_second_per_worker_expected` with `budget_rpcs_measured: false`.
//! - `simulated` (`--simulated N`): no real workers. N in-process workers each renew their
//!   budget with `AcquireBudget` themselves every 250 ms (`has` = the last unexpired grant,
//!   `used` = requests since the last renewal, `wants` = the key's limit, as a real
//!   worker's shard runners ask), and send HTTP GETs to the mock API paced by their own
//!   token bucket, the same `apitap_common::budget::Bucket` the worker's `RateBudget`
//!   spends its grants through. Every `AcquireBudget` call is counted, per worker and per
//!   second.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apitap_common::budget::{worker_burst, Bucket};
use apitap_proto::v1::worker_service_client::WorkerServiceClient;
use apitap_proto::v1::{BudgetRequest, GetRunRequest, ListRateLimitsRequest, SetRateLimitRequest};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

use super::control::{control, get_run, ms, r1, submit, Control, PROFILE};
use crate::stats::{percentile, summary};
use crate::testbed::{pipeline_doc, wait, TempPostgres, TestCluster};

/// How often a worker renews its budget for a key (`RENEW_EVERY` in
/// worker/src/rate_budget.rs).
pub const RENEW_EVERY: Duration = Duration::from_millis(250);
/// How long a permit request waits at most before asking the bucket again (`RECHECK`).
const RECHECK: Duration = Duration::from_millis(20);
/// Requests in the last this many ms of the run may not be logged yet: wait that long.
const TAIL_MS: u64 = 500;
/// The first second is left out of the utilisation.
const WARMUP_MS: u64 = 1000;
/// How often the coordinator's view (`ListRateLimits`) is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Options of [`ratelimit`] (also the flags of `apitap-chaos bench ratelimit`).
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitBench {
    /// Real workers (ignored with --simulated).
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Simulated in-process workers instead of real ones.
    #[arg(long)]
    pub simulated: Option<usize>,
    /// The key's limit, requests per second for the whole fleet.
    #[arg(long, default_value_t = 50.0)]
    pub limit: f64,
    #[arg(long, default_value_t = 5)]
    pub burst: u32,
    /// Length of the measured span, from the first request.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Shards of each of the two pipelines (real workers).
    #[arg(long, default_value_t = 4)]
    pub shards: u32,
    /// Records per page request.
    #[arg(long, default_value_t = 10)]
    pub page_size: u64,
    #[arg(long, default_value = "mock-api")]
    pub key: String,
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn channel(addr: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .connect()
        .await?)
}

// ---------------------------------------------------------------------------------------
// What the request log shows
// ---------------------------------------------------------------------------------------

/// The most arrivals any half-open 1-second window `[t, t + 1000)` holds, and the first
/// arrival of such a window. `t` must be sorted.
pub fn max_window(t: &[u64]) -> (usize, u64) {
    let (mut best, mut at, mut lo) = (0, 0, 0);
    for hi in 0..t.len() {
        while t[hi] - t[lo] >= 1000 {
            lo += 1;
        }
        if hi - lo + 1 > best {
            best = hi - lo + 1;
            at = t[lo];
        }
    }
    (best, at)
}

/// Window and utilisation figures of sorted arrivals (Unix ms) over `[t0, end)`.
pub fn analyse(arrivals: &[u64], t0: u64, end: u64, limit: f64, burst: u32) -> Value {
    let span: Vec<u64> = arrivals
        .iter()
        .copied()
        .filter(|t| *t >= t0 && *t < end)
        .collect();
    let (worst, worst_at) = max_window(&span);
    let busy_from = t0 + WARMUP_MS;
    let busy_t: Vec<u64> = span.iter().copied().filter(|t| *t >= busy_from).collect();
    let busy = busy_t.len();
    let (steady, steady_at) = max_window(&busy_t);
    let busy_secs = end.saturating_sub(busy_from) as f64 / 1000.0;
    let rate = if busy_secs > 0.0 {
        busy as f64 / busy_secs
    } else {
        0.0
    };
    // Requests in each whole second of the busy interval.
    let whole = end.saturating_sub(busy_from) / 1000;
    let mut each = vec![0f64; whole as usize];
    for t in &busy_t {
        if let Some(c) = each.get_mut(((t - busy_from) / 1000) as usize) {
            *c += 1.0;
        }
    }
    let mut sorted = each.clone();
    sorted.sort_by(f64::total_cmp);
    json!({
        "requests": span.len(),
        "worst_window": worst,
        "worst_window_at_s": r1(worst_at.saturating_sub(t0) as f64 / 1000.0),
        "worst_window_overshoot_pct": r1((worst as f64 - limit) / limit * 100.0),
        "worst_window_after_first_second": steady,
        "worst_window_after_first_second_at_s": r1(steady_at.saturating_sub(t0) as f64 / 1000.0),
        "worst_window_after_first_second_overshoot_pct": r1((steady as f64 - limit) / limit * 100.0),
        "gcra_bound": fleet_bound(limit, burst, 1),
        "busy_seconds": busy_secs,
        "busy_requests": busy,
        "requests_per_second": r2(rate),
        "utilisation_pct": r1(rate / limit * 100.0),
        "each_second": summary(&each),
        "counts_each_second": each,
        "each_second_min": sorted.first().copied().unwrap_or(0.0),
    })
}

/// Sorted arrival times (Unix ms) of `/v1` requests at the mock API, and how many of them
/// did not answer 200; whether the log dropped old entries.
pub(crate) fn arrivals(cluster: &TestCluster) -> (Vec<u64>, usize, bool) {
    let state = cluster.mock.state();
    let log = state.requests();
    let total = state.stats()["requests"].as_u64().unwrap_or(0);
    let truncated = (log.len() as u64) < total;
    let v1: Vec<_> = log
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .collect();
    let not_ok = v1.iter().filter(|r| r.status != 200).count();
    let mut t: Vec<u64> = v1.into_iter().map(|r| r.at_ms).collect();
    t.sort_unstable();
    (t, not_ok, truncated)
}

/// Waits for the first `/v1` request and returns its arrival (Unix ms).
pub(crate) async fn first_arrival(cluster: &TestCluster) -> anyhow::Result<u64> {
    wait::until_async(
        "the first request at the mock API",
        Duration::from_secs(120),
        || {
            let first = arrivals(cluster).0.first().copied();
            async move { first }
        },
    )
    .await
}

pub(crate) async fn sleep_until_ms(t: u64) {
    let now = now_ms();
    if t > now {
        tokio::time::sleep(Duration::from_millis(t - now)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The coordinator's view
// ---------------------------------------------------------------------------------------

/// One `ListRateLimits` sample of the key.
struct LimitSample {
    at_ms: u64,
    granted_rps: f64,
    holders: u32,
    used_last_second: u64,
}

/// Samples the key's allocation every [`SAMPLE_EVERY`] until `stop`.
fn sample_limits(
    mut ctl: Control,
    key: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<LimitSample>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let Ok(r) = ctl.list_rate_limits(ListRateLimitsRequest {}).await else {
                continue;
            };
            if let Some(l) = r.into_inner().limits.into_iter().find(|l| l.key == key) {
                out.push(LimitSample {
                    at_ms: now_ms(),
                    granted_rps: l.granted_rps,
                    holders: l.workers,
                    used_last_second: l.used_last_second,
                });
            }
        }
        out
    })
}

/// Figures of the samples taken in the busy interval `[t0 + 1 s, end)`.
fn coordinator_view(samples: &[LimitSample], t0: u64, end: u64) -> Value {
    let busy: Vec<&LimitSample> = samples
        .iter()
        .filter(|s| s.at_ms >= t0 + WARMUP_MS && s.at_ms < end)
        .collect();
    let granted: Vec<f64> = busy.iter().map(|s| s.granted_rps).collect();
    let used: Vec<f64> = busy.iter().map(|s| s.used_last_second as f64).collect();
    let holders: BTreeSet<u32> = busy.iter().map(|s| s.holders).collect();
    json!({
        "samples": busy.len(),
        "granted_rps": summary(&granted),
        "used_last_second": summary(&used),
        "holders": holders.into_iter().collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------
// The entry point
// ---------------------------------------------------------------------------------------

/// `bench ratelimit`: see the module doc. Returns the figures as one JSON object.
pub async fn ratelimit(b: RateLimitBench) -> anyhow::Result<Value> {
    anyhow::ensure!(
        b.limit > 0.0 && b.limit.is_finite(),
        "--limit must be positive"
    );
    anyhow::ensure!(b.burst >= 1, "--burst must be at least 1");
    anyhow::ensure!(b.seconds >= 3, "--seconds must be at least 3");
    anyhow::ensure!(b.page_size >= 1, "--page-size must be at least 1");
    match b.simulated {
        Some(n) => {
            anyhow::ensure!(n >= 1, "--simulated must be at least 1");
            simulated(&b, n).await
        }
        None => {
            anyhow::ensure!(b.workers >= 1, "--workers must be at least 1");
            anyhow::ensure!(b.shards >= 1, "--shards must be at least 1");
            real(&b).await
        }
    }
}

/// The most requests `n` workers with equal shares can send in a 1-second window, each
/// paced by its own GCRA bucket: a bucket at rate `r` with burst `b` lets `b - 1 + ceil(r)`
/// through in a second. The worker's burst is its share of the key's burst, at least 1; when
/// the `n` buckets hold more than `burst`, the coordinator shares `limit + burst - buckets`
/// instead of `limit`, but at least `limit / 2` (`coordinator/src/ratelimit/allocation.rs`).
pub fn fleet_bound(limit: f64, burst: u32, n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    let buckets = n as f64 * worker_burst(burst, limit / n as f64, limit);
    let effective = limit.min((limit + f64::from(burst) - buckets).max(limit / 2.0));
    let r = effective / n as f64;
    let each = worker_burst(burst, r, limit) - 1.0 + r.ceil();
    n as u64 * each as u64
}

fn expected_rpcs() -> f64 {
    1000.0 / RENEW_EVERY.as_millis() as f64
}

// ---------------------------------------------------------------------------------------
// Mode real
// ---------------------------------------------------------------------------------------

pub(crate) fn pipeline(
    b: &RateLimitBench,
    name: &str,
    start: u64,
    end: u64,
    mock: &str,
    pg: &str,
) -> String {
    let rate_limit = format!(
        "  rate_limit: {{ key: {}, requests_per_second: {}, burst: {} }}\n",
        b.key, b.limit, b.burst
    );
    pipeline_doc::Sharded {
        name,
        ids: start..=end,
        shards: b.shards,
        paging: &pipeline_doc::limit_offset(b.page_size),
        sink: &pipeline_doc::postgres(&name.replace('-', "_")),
        http_extra: "",
        spec_extra: &rate_limit,
    }
    .yaml()
    .replace("${MOCK_API_URL}", mock)
    .replace("${WAREHOUSE_URL}", pg)
}

async fn real(b: &RateLimitBench) -> anyhow::Result<Value> {
    // Enough records that neither pipeline could finish even with the whole limit to
    // itself for twice the measured span.
    let per_pipeline =
        ((b.limit * 1.2 * b.page_size as f64) * (2 * b.seconds + 30) as f64).ceil() as u64;
    let per_pipeline = per_pipeline.max(b.shards as u64 * b.page_size * 10);
    let pg = TempPostgres::start()?;
    let cluster = TestCluster::builder()
        .coordinators(1)
        .workers(b.workers)
        .records(2 * per_pipeline)
        .start()
        .await?;
    let addr = cluster.coordinator_addrs()[0].clone();
    let mut ctl = control(&addr).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_limits(ctl.clone(), b.key.clone(), stop.clone());

    let mut runs = Vec::new();
    for (name, start, end) in [
        ("bench-rl-a", 1, per_pipeline),
        ("bench-rl-b", per_pipeline + 1, 2 * per_pipeline),
    ] {
        let yaml = pipeline(b, name, start, end, &cluster.mock.url(), &pg.url());
        runs.push(submit(&mut ctl, name, yaml).await?);
    }

    let t0 = first_arrival(&cluster).await?;
    let end = t0 + b.seconds * 1000;
    eprintln!(
        "ratelimit (real, {} workers): measuring {} s from the first request …",
        b.workers, b.seconds
    );
    // Who holds shards, half-way through.
    sleep_until_ms(t0 + b.seconds * 500).await;
    let mut holders = BTreeSet::new();
    for run_id in &runs {
        let info = get_run(&mut ctl, *run_id).await?;
        holders.extend(
            info.shards
                .into_iter()
                .filter(|s| s.state == "leased" && !s.worker.is_empty())
                .map(|s| s.worker),
        );
    }
    sleep_until_ms(end + TAIL_MS).await;
    stop.store(true, Ordering::Relaxed);
    let (t, not_ok, truncated) = arrivals(&cluster);
    let mut states = Vec::new();
    for run_id in &runs {
        states.push(get_run(&mut ctl, *run_id).await?.state);
        let _ = ctl.cancel_run(GetRunRequest { run_id: *run_id }).await;
    }
    let samples = sampler.await?;

    let traffic = analyse(&t, t0, end, b.limit, b.burst);
    let out = json!({
        "bench": "ratelimit",
        "mode": "real",
        "coordinators": 1,
        "workers": b.workers,
        "workers_holding_shards": holders.len(),
        "pipelines": 2,
        "shards_per_pipeline": b.shards,
        "page_size": b.page_size,
        "sink": "postgres",
        "key": b.key,
        "limit_rps": b.limit,
        "burst": b.burst,
        "seconds": b.seconds,
        "traffic": traffic,
        "fleet_bound": fleet_bound(b.limit, b.burst, holders.len()),
        "non_200": not_ok,
        "log_truncated": truncated,
        "demand_held": states.iter().all(|s| s == "running"),
        "runs_state_at_end": states,
        "budget_rpcs_measured": false,
        "budget_rpcs_per_second_per_worker": Value::Null,
        "budget_rpcs_per_second_per_worker_expected": expected_rpcs(),
        "budget_rpcs_note": "expected, not measured: a real worker renews each key it uses every 250 ms (RENEW_EVERY in worker/src/rate_budget.rs) and nothing counts AcquireBudget calls; `--simulated N` measures them",
        "coordinator": coordinator_view(&samples, t0, end),
        "profile": PROFILE,
    });
    human(&out);
    if out["demand_held"] != true {
        eprintln!(
            "warning: a run ended during the measurement ({:?}): demand may have fallen below the limit",
            out["runs_state_at_end"]
        );
    }
    drop(cluster);
    drop(pg);
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Mode simulated
// ---------------------------------------------------------------------------------------

/// What a simulated worker's renewals saw.
#[derive(Default)]
struct Renewals {
    /// When each `AcquireBudget` call went out (Unix ms), answered or not.
    calls_at_ms: Vec<u64>,
    rpc_ms: Vec<f64>,
    errors: u64,
    /// Granted rps of each answer.
    grants: Vec<f64>,
}

/// Renews the budget every [`RENEW_EVERY`] until `stop`, one call at a time.
async fn renewer(
    id: String,
    key: String,
    wants: f64,
    mut client: WorkerServiceClient<Channel>,
    bucket: Arc<Mutex<Bucket>>,
    stop: Arc<AtomicBool>,
) -> Renewals {
    let mut st = Renewals::default();
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = Instant::now();
        let (has, used) = {
            let mut b = bucket.lock().expect("bucket lock");
            (b.has(sent), b.take_used())
        };
        st.calls_at_ms.push(now_ms());
        let r = client
            .acquire_budget(BudgetRequest {
                worker_id: id.clone(),
                key: key.clone(),
                wants_rps: wants,
                has_rps: has,
                used,
            })
            .await;
        match r {
            Ok(g) => {
                let g = g.into_inner();
                st.rpc_ms.push(ms(sent.elapsed()));
                st.grants.push(g.rps);
                bucket
                    .lock()
                    .expect("bucket lock")
                    .apply(&(&g).into(), sent);
            }
            Err(_) => st.errors += 1,
        }
    }
    st
}

/// One GET over a fresh connection (`Connection: close`); returns the status code.
async fn http_get(addr: SocketAddr, path: String) -> anyhow::Result<u16> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), io).await??;
    let line = raw.split(|c| *c == b'\n').next().unwrap_or_default();
    let status = String::from_utf8_lossy(line)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no HTTP status line"))?;
    Ok(status)
}

/// What a simulated worker's requests saw.
#[derive(Default)]
struct Sends {
    /// When each request went out (Unix ms).
    at_ms: Vec<u64>,
    errors: u64,
}

/// Sends pages of `[from, to]` as fast as the bucket allows until `stop`; each request
/// goes out on its own task, so the response time does not slow the pace.
async fn sender(
    mock: SocketAddr,
    (from, to): (u64, u64),
    page: u64,
    bucket: Arc<Mutex<Bucket>>,
    stop: Arc<AtomicBool>,
) -> Sends {
    let mut st = Sends::default();
    let mut inflight = tokio::task::JoinSet::new();
    let span = to - from + 1;
    let mut offset = 0;
    let tally = |st: &mut Sends, r: Result<anyhow::Result<u16>, tokio::task::JoinError>| {
        if !matches!(r, Ok(Ok(200))) {
            st.errors += 1;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let p = bucket
            .lock()
            .expect("bucket lock")
            .permit(Instant::now(), now_ms(), RECHECK);
        match p {
            Ok(()) => {
                st.at_ms.push(now_ms());
                let path = format!(
                    "/v1/limit_offset?from_id={from}&to_id={to}&offset={offset}&limit={page}"
                );
                offset = (offset + page) % span;
                inflight.spawn(http_get(mock, path));
            }
            Err(d) => tokio::time::sleep(d).await,
        }
        while let Some(r) = inflight.try_join_next() {
            tally(&mut st, r);
        }
    }
    while let Some(r) = inflight.join_next().await {
        tally(&mut st, r);
    }
    st
}

/// Count of `t` (Unix ms) in `[from, to)`.
fn count_in(t: &[u64], from: u64, to: u64) -> usize {
    t.iter().filter(|x| **x >= from && **x < to).count()
}

async fn simulated(b: &RateLimitBench, n: usize) -> anyhow::Result<Value> {
    let records = (n as u64 * b.page_size * 100).max(10_000);
    let cluster = TestCluster::builder()
        .coordinators(1)
        .workers(0)
        .records(records)
        .start()
        .await?;
    let addr = cluster.coordinator_addrs()[0].clone();
    let mut ctl = control(&addr).await?;
    ctl.set_rate_limit(SetRateLimitRequest {
        key: b.key.clone(),
        rps: b.limit,
        burst: b.burst,
    })
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_limits(ctl.clone(), b.key.clone(), stop.clone());

    // One gRPC connection per simulated worker, as real workers have.
    let mock = cluster.mock.addr();
    let per_worker = records / n as u64;
    let mut tasks = Vec::new();
    for i in 0..n {
        let id = format!("sim-{:03}", i + 1);
        let client = WorkerServiceClient::new(channel(&addr).await?);
        let bucket = Arc::new(Mutex::new(Bucket::default()));
        let renew = tokio::spawn(renewer(
            id.clone(),
            b.key.clone(),
            b.limit,
            client,
            bucket.clone(),
            stop.clone(),
        ));
        let range = (i as u64 * per_worker + 1, (i as u64 + 1) * per_worker);
        let send = tokio::spawn(sender(mock, range, b.page_size, bucket, stop.clone()));
        tasks.push((id, renew, send));
    }

    let t0 = first_arrival(&cluster).await?;
    let end = t0 + b.seconds * 1000;
    eprintln!(
        "ratelimit (simulated, {n} workers): measuring {} s from the first request …",
        b.seconds
    );
    sleep_until_ms(end + TAIL_MS).await;
    stop.store(true, Ordering::Relaxed);
    let mut per_worker_rpcs = Vec::new();
    let mut each_second_rpcs = Vec::new();
    let mut per_worker_rps = Vec::new();
    let mut rpc_ms = Vec::new();
    let (mut rpc_errors, mut http_errors, mut calls) = (0u64, 0u64, 0usize);
    let mut grants = Vec::new();
    let secs = b.seconds as f64;
    for (_id, renew, send) in tasks {
        let r = renew.await?;
        let s = send.await?;
        let c = count_in(&r.calls_at_ms, t0, end);
        calls += c;
        per_worker_rpcs.push(c as f64 / secs);
        for k in 0..b.seconds {
            let from = t0 + k * 1000;
            each_second_rpcs.push(count_in(&r.calls_at_ms, from, from + 1000) as f64);
        }
        per_worker_rps.push(count_in(&s.at_ms, t0 + WARMUP_MS, end) as f64 / (secs - 1.0));
        rpc_ms.extend(r.rpc_ms);
        rpc_errors += r.errors;
        http_errors += s.errors;
        grants.extend(r.grants);
    }
    let samples = sampler.await?;
    let (t, not_ok, truncated) = arrivals(&cluster);
    let traffic = analyse(&t, t0, end, b.limit, b.burst);
    let sorted = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s
    };
    let pw = sorted(&per_worker_rpcs);
    let es = sorted(&each_second_rpcs);
    let rps = sorted(&per_worker_rps);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let out = json!({
        "bench": "ratelimit",
        "mode": "simulated",
        "coordinators": 1,
        "workers": n,
        "page_size": b.page_size,
        "key": b.key,
        "limit_rps": b.limit,
        "burst": b.burst,
        "seconds": b.seconds,
        "traffic": traffic,
        "fleet_bound": fleet_bound(b.limit, b.burst, n),
        "non_200": not_ok,
        "http_errors": http_errors,
        "log_truncated": truncated,
        "budget_rpcs_measured": true,
        "budget_rpcs": calls,
        "budget_rpcs_per_second_per_worker": r2(mean(&pw)),
        "budget_rpcs_per_second_per_worker_min": r2(pw.first().copied().unwrap_or(0.0)),
        "budget_rpcs_per_second_per_worker_max": r2(pw.last().copied().unwrap_or(0.0)),
        "budget_rpcs_per_second_per_worker_expected": expected_rpcs(),
        "budget_rpcs_each_worker_second": {
            "n": es.len(),
            "min": es.first().copied().unwrap_or(0.0),
            "p50": percentile(&es, 50.0),
            "max": es.last().copied().unwrap_or(0.0),
        },
        "budget_rpcs_per_second_total": r2(calls as f64 / secs),
        "budget_rpc_ms": summary(&rpc_ms),
        "budget_rpc_errors": rpc_errors,
        "granted_rps_each_answer": summary(&grants),
        "fair_share_rps": r2(b.limit / n as f64),
        "sent_rps_per_worker": {
            "min": r2(rps.first().copied().unwrap_or(0.0)),
            "mean": r2(mean(&rps)),
            "max": r2(rps.last().copied().unwrap_or(0.0)),
        },
        "coordinator": coordinator_view(&samples, t0, end),
        "profile": PROFILE,
    });
    human(&out);
    drop(cluster);
    Ok(out)
}

/// The short summary on stderr.
fn human(out: &Value) {
    let t = &out["traffic"];
    let rpcs = if out["budget_rpcs_measured"] == true {
        format!(
            "{} budget RPCs/s per worker measured (min {} / max {}; expected {})",
            out["budget_rpcs_per_second_per_worker"],
            out["budget_rpcs_per_second_per_worker_min"],
            out["budget_rpcs_per_second_per_worker_max"],
            out["budget_rpcs_per_second_per_worker_expected"],
        )
    } else {
        format!(
            "budget RPCs/s per worker NOT measured, expected {} (renew cadence)",
            out["budget_rpcs_per_second_per_worker_expected"],
        )
    };
    eprintln!(
        "ratelimit {} ({} workers), limit {}/s burst {}, {} s: worst 1 s window {} ({}% over the limit; after the first second {}, {}%; GCRA bound {}, fleet bound {}), utilisation {}% ({} req/s; each second min {} / p50 {} / max {}); {}; {} non-200",
        out["mode"].as_str().unwrap_or("?"),
        out["workers"],
        out["limit_rps"],
        out["burst"],
        out["seconds"],
        t["worst_window"],
        t["worst_window_overshoot_pct"],
        t["worst_window_after_first_second"],
        t["worst_window_after_first_second_overshoot_pct"],
        t["gcra_bound"],
        out["fleet_bound"],
        t["utilisation_pct"],
        t["requests_per_second"],
        t["each_second_min"],
        t["each_second"]["p50"],
        t["each_second"]["max"],
        rpcs,
        out["non_200"],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_half_open_seconds() {
        assert_eq!(max_window(&[]), (0, 0));
        assert_eq!(max_window(&[0, 999, 1000, 1500, 1998]), (4, 999));
        assert_eq!(max_window(&[0, 999, 1000, 1500, 1999]), (3, 999));
        // 50 evenly spaced per second over 3 s: any second holds 50.
        let t: Vec<u64> = (0..150).map(|i| i * 20).collect();
        assert_eq!(max_window(&t).0, 50);
    }

    #[test]
    fn utilisation_leaves_out_the_first_second() {
        // 100/s in the first second, then 50/s for 4 s.
        let mut t: Vec<u64> = (0..100).map(|i| 10_000 + i * 10).collect();
        t.extend((0..200).map(|i| 11_000 + i * 20));
        let v = analyse(&t, 10_000, 15_000, 50.0, 5);
        assert_eq!(v["worst_window"], 100);
        assert_eq!(v["worst_window_overshoot_pct"], 100.0);
        assert_eq!(v["worst_window_after_first_second"], 50);
        assert_eq!(v["worst_window_after_first_second_overshoot_pct"], 0.0);
        assert_eq!(v["busy_requests"], 200);
        assert_eq!(v["utilisation_pct"], 100.0);
        assert_eq!(v["each_second"]["n"], 4);
        assert_eq!(v["gcra_bound"], 54);
    }

    #[test]
    fn fleet_bounds() {
        // 4 workers at 12.5/s, burst 1 each: 13 each in a second.
        assert_eq!(fleet_bound(50.0, 5, 4), 52);
        // 16 workers, burst 1 each (not 5 / 16): the rates share 55 - 16 = 39, 2.4375/s
        // each, so 3 each in a second.
        assert_eq!(fleet_bound(50.0, 5, 16), 48);
        // One worker: the key's own bucket.
        assert_eq!(fleet_bound(50.0, 5, 1), 54);
        // 60 workers: rates at half the limit, 25/60 each: one request each in a second.
        assert_eq!(fleet_bound(50.0, 5, 60), 60);
        assert_eq!(fleet_bound(50.0, 5, 0), 0);
    }
}
