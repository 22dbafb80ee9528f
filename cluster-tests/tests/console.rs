//! The coordinator's JSON API and web console on a TLS cluster: a run followed to
//! `succeeded` through `/api` with a viewer token agrees with `apitapctl -o json`; requests
//! without a token or with too small a role are refused; and a real headless Chromium signs
//! in, shows the run with the same record count, and starts and cancels a run by clicking
//! the page's own buttons. The new parts agree with `apitapctl -o json`: a failed run's
//! dead letters (count and sample), the recent elections, a draining worker; the run page
//! follows a run over its event stream. A follower serves events too, at most
//! `--http-max-streams` at once. The screenshots stay in `<target>/tmp/console/` (emptied
//! by the next run) as artefacts.

use std::time::{Duration, Instant};

use apitap_chaos::testbed::{out_dir, wait, TestCluster};
use apitap_cluster_tests::api::{latency, Api};
use apitap_cluster_tests::browser::{self, Browser};
use apitap_cluster_tests::{fixture, pipelines};
use reqwest::StatusCode;
use serde_json::Value;

const RECORDS: u64 = 300;
const PIPELINE: &str = "console-orders";
const BAD: &str = "console-bad-sql";
/// Records per page of the bad pipeline: its first page is dead-lettered whole.
const BAD_PAGE: u64 = 50;

/// A pipeline whose SQL names a column the source lacks: its first page goes to the sink's
/// dead-letter table and the run fails.
fn bad_sql(db: &std::path::Path) -> String {
    format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: {BAD} }}
spec:
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/limit_offset"
      records: $.data
      pagination: {{ kind: limit_offset, size: {BAD_PAGE} }}
  transform:
    sql: SELECT id, no_such_column FROM source
  sink:
    sqlite: {{ path: "{}", table: never_loaded }}
"#,
        db.display()
    )
}

/// The failed run's dead letters: the same in `/api` as in `apitapctl -o json`, counted
/// and sampled within the bounds.
async fn dead_letters(cluster: &TestCluster, api: &Api) -> anyhow::Result<u64> {
    let bad = cluster.submit(BAD, &bad_sql(&cluster.out_path("console-bad.db")))?;
    let ctl = cluster.wait_for_run(bad, Duration::from_secs(60))?;
    assert_eq!(ctl["state"], "failed", "{ctl:#}");
    let api_run = api.get(&format!("/api/runs/{bad}")).await?;
    assert_eq!(
        api_run["run"], ctl,
        "the API and apitapctl show the same dead letters"
    );
    assert_eq!(ctl["dead_letters"], BAD_PAGE, "{ctl:#}");
    let shard = &ctl["shards"][0];
    assert_eq!(shard["dead_letters"], BAD_PAGE, "{shard:#}");
    let sample = shard["dead_letter_sample"].as_array().expect("a sample");
    assert_eq!(sample.len(), 3, "MAX_DEAD_LETTER_SAMPLE: {shard:#}");
    for d in sample {
        assert_eq!(d["page"], 1, "{d}");
        assert!(
            d["error"].as_str().unwrap().contains("no_such_column"),
            "{d}"
        );
        assert!(d["record"].as_str().unwrap().starts_with('{'), "{d}");
    }
    let text = cluster.ctl_ok(&["describe", "run", &bad.to_string()])?;
    assert!(
        text.contains(&format!("Dead letters: {BAD_PAGE} records")),
        "{text}"
    );
    Ok(bad)
}

fn token(cluster: &TestCluster, name: &str, role: &str) -> anyhow::Result<String> {
    let t = cluster.ctl_json(&[
        "token",
        "create",
        name,
        "--role",
        role,
        "--namespaces",
        "default",
    ])?;
    Ok(t["token"].as_str().unwrap_or_default().to_string())
}

/// No token, a token that is none, a viewer acting, bad parameters: each refused.
async fn refusals(admin: &str, viewer: &str, run: u64) -> anyhow::Result<()> {
    // Refusals: no token, a token that is no token, a viewer acting.
    let anonymous = Api::new(admin, None);
    let (status, body) = anonymous.send(false, &format!("/api/runs/{run}")).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("needs a token"),
        "{body}"
    );
    let forged = Api::new(
        admin,
        Some(
            "apitap_000000000000_0000000000000000000000000000000000000000000000000000000000000000",
        ),
    );
    assert_eq!(
        forged.send(false, "/api/cluster").await?.0,
        StatusCode::UNAUTHORIZED
    );
    let as_viewer = Api::new(admin, Some(viewer));
    for action in [
        format!("/api/runs/{run}/cancel"),
        format!("/api/pipelines/default/{PIPELINE}/run"),
    ] {
        let (status, body) = as_viewer.send(true, &action).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("role viewer"),
            "{body}"
        );
    }
    for bad in [
        "/api/runs?limit=0",
        "/api/runs?limit=1001",
        "/api/pipelines/default/Not_A_Name",
    ] {
        assert_eq!(
            as_viewer.send(false, bad).await?.0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_api_and_the_console_show_a_run_and_act_on_the_leader() -> anyhow::Result<()> {
    let out = out_dir::fresh(
        &std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console"),
        "console test",
    )?;
    let cluster = TestCluster::builder()
        .out_dir(&out)
        .tls()
        .coordinators(1)
        .workers(2)
        .records(RECORDS)
        .start()
        .await?;
    let admin = cluster.coordinators[0]
        .admin
        .clone()
        .expect("admin address");
    let viewer = token(&cluster, "console-viewer", "viewer")?;
    let operator = token(&cluster, "console-operator", "operator")?;
    let db = cluster.out_path("console.db");
    let run = cluster.submit(
        PIPELINE,
        &pipelines::sharded_sqlite(PIPELINE, RECORDS, 3, 50, &db),
    )?;

    refusals(&admin, &viewer, run).await?;
    let as_viewer = Api::new(&admin, Some(&viewer));

    // Follow the run to the end through the API; it agrees with apitapctl.
    let api_run = wait::until_async(
        "the run to succeed in /api",
        Duration::from_secs(120),
        || async {
            let v = as_viewer.get(&format!("/api/runs/{run}")).await.ok()?;
            (v["run"]["state"] == "succeeded").then_some(v)
        },
    )
    .await?;
    assert_eq!(api_run["stale"], false, "the only node leads");
    let ctl_run = fixture::wait_succeeded(&cluster, run, Duration::from_secs(10))?;
    assert_eq!(
        api_run["run"], ctl_run,
        "the API and apitapctl show the same run"
    );
    let records: u64 = ctl_run["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["records"].as_u64().unwrap())
        .sum();
    assert_eq!(records, RECORDS);
    let status = cluster.cluster_status()?;
    let api_cluster = as_viewer.get("/api/cluster").await?;
    for field in ["leader_id", "term", "node_id", "elections"] {
        assert_eq!(api_cluster["cluster"][field], status[field], "{field}");
    }
    let newest = &status["elections"][0];
    assert_eq!(
        (&newest["term"], &newest["leader_id"]),
        (&status["term"], &status["leader_id"]),
        "the newest election is the current term: {status:#}"
    );
    // A run that ends by the event stream: one `run` event per change, the last one
    // ended, then the stream closes.
    let mut events = as_viewer
        .events(&format!("/api/runs/{run}/events"))
        .await?
        .map_err(|e| anyhow::anyhow!("events refused: {e:?}"))?;
    let (name, data) = events
        .next(Duration::from_secs(10))
        .await?
        .expect("an event");
    assert_eq!((name.as_str(), &data["run"]), ("run", &ctl_run));
    assert!(
        events.next(Duration::from_secs(10)).await?.is_none(),
        "ended"
    );
    let bad = dead_letters(&cluster, &as_viewer).await?;
    let workers = as_viewer.get("/api/workers").await?;
    assert_eq!(
        workers["workers"].as_array().map(Vec::len),
        Some(2),
        "{workers}"
    );
    let listed = as_viewer.get("/api/pipelines").await?;
    let p = listed["pipelines"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["name"] == PIPELINE))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (p["name"].as_str(), p["schedule"].as_str()),
        (Some(PIPELINE), Some("manual"))
    );
    assert_eq!(
        (p["last_run_id"].as_u64(), &p["next_run_ms"]),
        (Some(run), &Value::Null)
    );
    let doc = Api::new(&admin, None).get("/api/openapi.json").await?;
    assert!(doc["paths"]["/api/runs/{id}"]["get"].is_object(), "{doc}");
    assert!(
        doc["paths"]["/api/runs/{id}/events"]["get"].is_object(),
        "{doc}"
    );

    let (api_p50, api_p99) = latency(&as_viewer, &format!("/api/runs/{run}"), 200).await?;
    println!("GET /api/runs/{run}: p50 {api_p50:.2} ms, p99 {api_p99:.2} ms (200 requests)");

    if browser::chromium().is_none() {
        eprintln!(
            "SKIPPED the browser half: chromium is not installed (scripts/prereqs.sh installs it)"
        );
        return Ok(());
    }
    let mut cluster = cluster;
    browse(&mut cluster, &admin, &operator, run, bad).await
}

/// The console in headless Chromium: sign in, read the run, start and cancel a run by
/// clicking the page's buttons.
async fn browse(
    cluster: &mut TestCluster,
    admin: &str,
    operator: &str,
    run: u64,
    bad: u64,
) -> anyhow::Result<()> {
    let base = format!("http://{admin}");
    // The plain command line, without a session, lands on the sign-in form.
    let out = browser::headless(&["--dump-dom"], &format!("{base}/console/cluster"))?;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("Sign in") && dom.contains("name=\"token\""),
        "{dom}"
    );
    let shot = cluster.out_path("console-login.png");
    browser::headless(
        &[
            "--window-size=1280,900",
            &format!("--screenshot={}", shot.display()),
        ],
        &format!("{base}/console/login"),
    )?;
    assert!(std::fs::metadata(&shot)?.len() > 1000, "a login screenshot");

    let mut b = Browser::launch(&cluster.out_path("chromium-profile"), 1280, 900)?;
    b.open(&format!("{base}/console/login"))?;
    let token = serde_json::to_string(operator)?;
    b.eval(&format!("document.querySelector('#token').value = {token}"))?;
    b.click_and_wait("form.login button")?;
    assert_eq!(b.eval("location.pathname")?, "/console/cluster");
    assert!(b.text("#term")?.parse::<u64>()? >= 1);
    let elections = cluster.cluster_status()?["elections"].clone();
    assert_eq!(
        b.text("#elections td.num")?,
        elections[0]["term"].to_string(),
        "the newest election as apitapctl shows it: {elections}"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#elections tbody tr').length")?,
        elections.as_array().map(Vec::len).unwrap_or(0)
    );
    b.screenshot(&cluster.out_path("console-cluster.png"))?;

    b.open(&format!("{base}/console/runs/{bad}"))?;
    let ctl_bad = cluster.run_info(bad)?;
    assert_eq!(
        b.text("#run-dead-letters")?,
        ctl_bad["dead_letters"].to_string()
    );
    assert_eq!(
        b.text(r#"tr[data-shard="0"] .dead-letters"#)?,
        ctl_bad["shards"][0]["dead_letters"].to_string()
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#dead-letters tbody tr').length")?,
        ctl_bad["shards"][0]["dead_letter_sample"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    );
    b.screenshot(&cluster.out_path("console-dead-letters.png"))?;

    let t = Instant::now();
    b.open(&format!("{base}/console/runs/{run}"))?;
    println!(
        "console run page: loaded in {:.1} ms (Chromium, navigation to load event)",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let dom = b.dom()?;
    assert!(dom.contains("data-terminal=\"true\""), "{dom}");
    assert_eq!(b.text("#run-state")?, "succeeded");
    assert_eq!(b.text("#run-records")?, RECORDS.to_string());
    b.screenshot(&cluster.out_path("console-run.png"))?;
    b.resize(390, 844, true)?;
    b.open(&format!("{base}/console/runs/{run}"))?;
    b.screenshot(&cluster.out_path("console-run-phone.png"))?;
    b.resize(1280, 900, false)?;

    act_through_the_page(cluster, &mut b, &base, run)?;
    rate_chart(cluster, &mut b, &base).await?;
    draining(cluster, &mut b, &base).await?;

    // The plain command line with the same profile is signed in too (its cookie persisted).
    let profile = cluster.out_path("chromium-profile");
    b.close()?;
    let out = browser::headless(
        &[
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
        ],
        &format!("{base}/console/runs/{run}"),
    )?;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(r#"<span id="run-state" class="st ok">succeeded</span>"#),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(r#"<span id="run-records">{RECORDS}</span>"#)),
        "{dom}"
    );
    let audit = cluster.ctl_json(&["audit"])?;
    assert!(
        audit.to_string().contains("console-operator"),
        "the actions are audited as the operator: {audit}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_reads_marked_stale_and_sends_actions_to_the_leader() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .coordinators(3)
        .workers(0)
        .records(10)
        .start()
        .await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(30))?;
    let db = cluster.out_path("follower.db");
    let run = cluster.submit(
        PIPELINE,
        &pipelines::sharded_sqlite(PIPELINE, 10, 1, 10, &db),
    )?;
    let follower = cluster
        .coordinators
        .iter()
        .find(|c| c.id != leader)
        .and_then(|c| c.admin.clone())
        .expect("a follower's admin address");
    // Insecure cluster: no token needed, as for apitapctl.
    let api = Api::new(&follower, None);
    let got = wait::until_async(
        "the run on the follower",
        Duration::from_secs(30),
        || async { api.get(&format!("/api/runs/{run}")).await.ok() },
    )
    .await?;
    assert_eq!(got["stale"], true, "{got}");
    assert_eq!(got["run"]["run_id"], run);
    let (status, body) = api.send(true, &format!("/api/runs/{run}/cancel")).await?;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{body}");
    assert_eq!(body["leader_id"], leader, "{body}");
    let leader_grpc = cluster
        .coordinators
        .iter()
        .find(|c| c.id == leader)
        .map(|c| c.addr.clone());
    assert_eq!(
        body["leader_addr"].as_str(),
        leader_grpc.as_deref(),
        "{body}"
    );
    Ok(())
}

/// Run now from the run page, on a slow source so that the new run is still going, then
/// cancel it from its page.
fn act_through_the_page(
    cluster: &TestCluster,
    b: &mut Browser,
    base: &str,
    run: u64,
) -> anyhow::Result<()> {
    fixture::slow_source(cluster, 2_000);
    b.open(&format!("{base}/console/runs/{run}"))?;
    b.click_and_wait("form.run-now button")?;
    let path = b.eval("location.pathname")?;
    let second: u64 = path
        .as_str()
        .and_then(|p| p.strip_prefix("/console/runs/"))
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("run now led to {path}"))?;
    assert!(second > run, "a new run: {path}");
    let state = b.text("#run-state")?;
    assert!(matches!(state.as_str(), "pending" | "running"), "{state}");
    // The page's script follows the run in place (no reload while it goes on).
    b.eval("window.stillThisPage = true")?;
    wait::until(
        "the page to show the run running",
        Duration::from_secs(30),
        || (b.text("#run-state").ok()? == "running").then_some(()),
    )?;
    assert_eq!(
        b.eval("window.stillThisPage === true")?,
        true,
        "updated without a reload"
    );
    assert_eq!(
        b.eval("document.querySelector('[data-run-id]').dataset.live")?,
        "stream",
        "followed over the event stream, not by polling"
    );
    b.screenshot(&cluster.out_path("console-run-live.png"))?;
    b.click_and_wait("form.cancel button")?;
    assert_eq!(
        b.eval("location.pathname")?,
        format!("/console/runs/{second}")
    );
    assert_eq!(b.text("#run-state")?, "cancelled");
    assert_eq!(cluster.run_info(second)?["state"], "cancelled");
    b.click_and_wait("form.retry button")?;
    assert_eq!(
        b.eval("location.pathname")?,
        format!("/console/runs/{second}")
    );
    let state = b.text("#run-state")?;
    assert!(
        matches!(state.as_str(), "pending" | "running"),
        "retried: {state}"
    );
    Ok(())
}

/// A rate-limit key gets a chart once the leader has sampled it: the page draws as many
/// points as `/api/ratelimits` has samples (or one more, taken in between).
async fn rate_chart(cluster: &TestCluster, b: &mut Browser, base: &str) -> anyhow::Result<()> {
    const KEY: &str = "console.example";
    cluster.ctl_ok(&["ratelimit", "set", KEY, "--rps", "5"])?;
    let api = Api::new(&base["http://".len()..], cluster.token());
    let samples = wait::until_async(
        "the leader to sample the new key",
        Duration::from_secs(30),
        || async {
            let v = api.get("/api/ratelimits").await.ok()?;
            let series = v["history"].as_array()?.iter().find(|s| s["key"] == KEY)?;
            let n = series["samples"].as_array()?.len();
            (n >= 1 && series["samples"][0]["limit_rps"] == 5.0).then_some(n)
        },
    )
    .await?;
    b.open(&format!("{base}/console/ratelimits"))?;
    let drawn = b.eval(&format!(
        "document.querySelector('figure.chart[data-key=\"{KEY}\"]').dataset.samples"
    ))?;
    let drawn: usize = drawn.as_str().unwrap_or_default().parse()?;
    assert!(
        (samples..=samples + 1).contains(&drawn),
        "{drawn} points drawn, {samples} samples in /api"
    );
    assert_eq!(
        b.eval(&format!(
            "document.querySelectorAll('figure.chart[data-key=\"{KEY}\"] polyline').length"
        ))?,
        3,
        "limit, granted and used"
    );
    b.screenshot(&cluster.out_path("console-ratelimits.png"))?;
    Ok(())
}

/// SIGTERM to a worker: it tells the leader it drains before it leaves, and `/api`, the
/// console and `apitapctl get workers -o json` show it draining.
async fn draining(cluster: &mut TestCluster, b: &mut Browser, base: &str) -> anyhow::Result<()> {
    cluster
        .worker_proc(0)
        .expect("worker 0")
        .signal(libc::SIGTERM);
    let api = Api::new(&base["http://".len()..], cluster.token());
    let worker = wait::until_async(
        "a worker to show draining in /api/workers",
        Duration::from_secs(30),
        || async {
            let v = api.get("/api/workers").await.ok()?;
            v["workers"]
                .as_array()?
                .iter()
                .find(|w| w["draining"] == true)
                .and_then(|w| w["worker_id"].as_str().map(str::to_owned))
        },
    )
    .await?;
    let listed = cluster.ctl_json(&["get", "workers"])?;
    let ctl = listed
        .as_array()
        .and_then(|l| l.iter().find(|w| w["worker_id"] == worker.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ctl["draining"], true, "{listed:#}");
    b.open(&format!("{base}/console/workers"))?;
    let row = format!(r#"tr[data-worker="{worker}"]"#);
    assert_eq!(
        b.eval(&format!("document.querySelector('{row}').dataset.draining"))?,
        "true"
    );
    assert_eq!(b.text(&format!("{row} td.draining"))?, "draining");
    b.screenshot(&cluster.out_path("console-workers-draining.png"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn run_events_are_bounded_per_node_and_a_closed_stream_frees_its_place() -> anyhow::Result<()>
{
    let cluster = TestCluster::builder()
        .coordinators(1)
        .workers(0)
        .records(10)
        .coordinator_env("APITAP_HTTP_MAX_STREAMS", "2")
        .start()
        .await?;
    let db = cluster.out_path("streams.db");
    // No workers: the run stays pending and its streams stay open.
    let run = cluster.submit(
        PIPELINE,
        &pipelines::sharded_sqlite(PIPELINE, 10, 1, 10, &db),
    )?;
    let admin = cluster.coordinators[0].admin.clone().expect("admin");
    let api = Api::new(&admin, None);
    let path = format!("/api/runs/{run}/events");
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = api
            .events(&path)
            .await?
            .map_err(|e| anyhow::anyhow!("refused: {e:?}"))?;
        let (name, data) = s.next(Duration::from_secs(10)).await?.expect("an event");
        assert_eq!(
            (name.as_str(), &data["run"]["state"]),
            ("run", &Value::from("pending"))
        );
        open.push(s);
    }
    let (status, body) = api.events(&path).await?.err().expect("a third is refused");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("--http-max-streams"),
        "{body}"
    );
    let (status, _) = api
        .events("/api/runs/999999/events")
        .await?
        .err()
        .expect("404");
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(open.pop());
    // The server notices the closed connection at its next write (a keep-alive at the
    // latest) and frees the place.
    let mut again = wait::until_async(
        "a place freed by the closed stream",
        Duration::from_secs(40),
        || async { api.events(&path).await.ok()?.ok() },
    )
    .await?;
    assert!(again.next(Duration::from_secs(10)).await?.is_some());
    Ok(())
}
