//! The trust boundary on a TLS cluster, attack by attack: each call below is one an
//! attacker on the network (or a compromised worker, or a token of too little scope) would
//! make, and each must be refused with a message that says who asked for what, while the
//! cluster keeps serving.

use std::process::Output;
use std::time::Duration;

use apitap_chaos::testbed::TestCluster;
use apitap_cluster_tests::fixture;
use apitap_proto::tls::Tls;
use apitap_proto::v1::raft_service_client::RaftServiceClient;
use apitap_proto::v1::worker_service_client::WorkerServiceClient;
use apitap_proto::v1::{
    CheckpointReport, HeartbeatRequest, LeaseRef, RaftMessage, RegisterRequest,
};
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// A channel to `addr` presenting the certificate of `tls`.
async fn channel(addr: &str, tls: Tls) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls.client("127.0.0.1"))?
        .connect()
        .await?)
}

fn stderr(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn refused(out: &Output, what: &str, says: &str) {
    let text = stderr(out);
    assert!(!out.status.success(), "{what}: admitted\n{text}");
    assert!(text.contains(says), "{what}: expected {says:?} in\n{text}");
}

/// A token of `role` for `namespaces`, created by the cluster's admin.
fn token(
    cluster: &TestCluster,
    name: &str,
    role: &str,
    namespaces: &[&str],
) -> anyhow::Result<Value> {
    let mut args = vec!["token", "create", name, "--role", role];
    let namespaces = namespaces.join(",");
    if !namespaces.is_empty() {
        args.extend(["--namespaces", &namespaces]);
    }
    cluster.ctl_json(&args)
}

fn pipeline(name: &str, namespace: &str, url_extra: &str, db: &std::path::Path) -> String {
    format!(
        r#"apiVersion: apitap/v1
kind: Pipeline
metadata: {{ name: {name}, namespace: {namespace} }}
spec:
  source:
    http:
      url: "${{MOCK_API_URL}}/v1/limit_offset?to_id=20{url_extra}"
      records: $.data
      pagination: {{ kind: limit_offset, size: 10 }}
  sink:
    sqlite: {{ path: "{}", table: {table} }}
"#,
        db.display(),
        table = name.replace('-', "_")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attack_on_the_trust_boundary_is_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .tls()
        .coordinators(1)
        .workers(2)
        .records(100)
        .worker_env("AWS_SECRET_ACCESS_KEY", "worker-own-credential")
        .start()
        .await?;
    let addr = cluster.coordinator_addrs()[0].clone();
    let certs = cluster.certs.clone().expect("TLS certificates");

    // Raft from a user certificate, and from a coordinator that is not a member.
    let append = RaftMessage {
        json: b"{}".to_vec(),
    };
    let mut as_user = RaftServiceClient::new(channel(&addr, certs.client_tls()?).await?);
    let e = as_user.append_entries(append.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("only member coordinators"), "{e:?}");
    let mut stranger = RaftServiceClient::new(channel(&addr, certs.coordinator_tls(9)?).await?);
    let e = stranger.append_entries(append).await.unwrap_err();
    assert!(
        e.message().contains("coordinator 9 is not a member"),
        "{e:?}"
    );

    // A snapshot chunk far beyond any snapshot, even from a member's certificate.
    let chunk = serde_json::json!({
        "vote": {"leader_id": {"term": 1, "node_id": 1}, "committed": true},
        "meta": {
            "last_log_id": null,
            "last_membership": {"log_id": null, "membership": {"configs": [], "nodes": {}}},
            "snapshot_id": "forged"
        },
        "offset": 1u64 << 40,
        "data": [1, 2, 3],
        "done": false
    });
    let mut member = RaftServiceClient::new(channel(&addr, certs.coordinator_tls(1)?).await?);
    let e = member
        .install_snapshot(RaftMessage {
            json: serde_json::to_vec(&chunk)?,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("MAX_SNAPSHOT_BYTES"), "{e:?}");
    assert_eq!(cluster.cluster_status()?["leader_id"], 1, "still serving");

    // A worker speaking for another worker.
    let mut w1 = WorkerServiceClient::new(channel(&addr, certs.worker_tls("worker-1")?).await?);
    // A second process with worker-1's own certificate and id, while worker-1 is live.
    cluster.wait_for_workers(2, Duration::from_secs(30))?;
    for e in [
        w1.register(RegisterRequest {
            worker_id: "worker-1".into(),
            slots: 1,
            instance: "a-copy".into(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        w1.heartbeat(HeartbeatRequest {
            worker_id: "worker-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
    ] {
        assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
        assert!(e.message().contains("another live process"), "{e:?}");
    }
    let e = w1
        .heartbeat(HeartbeatRequest {
            worker_id: "worker-2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("may not act as worker \"worker-2\""),
        "{e:?}"
    );
    let e = w1
        .report_checkpoint(CheckpointReport {
            worker_id: "worker-2".into(),
            lease: Some(LeaseRef {
                run_id: 1,
                shard: 0,
                fence: 1,
            }),
            checkpoint_json: "{}".into(),
            pages: 1,
            records: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // A worker's certificate (without a token) asking for a membership change.
    let worker_cert: Vec<(String, String)> = certs.worker_env("worker-1")?;
    let mut env: Vec<(&str, &str)> = worker_cert
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("APITAP_TOKEN", ""));
    let out = cluster.ctl_with(&env, &["cluster", "add", "7", "127.0.0.1:1"])?;
    refused(
        &out,
        "a worker certificate calling ClusterAdd",
        "needs a token with role admin",
    );

    // Roles and namespaces.
    let viewer = token(&cluster, "read-a", "viewer", &["a"])?;
    let operator = token(&cluster, "ops-a", "operator", &["a"])?;
    let viewer_token = viewer["token"].as_str().expect("token").to_string();
    let operator_token = operator["token"].as_str().expect("token").to_string();
    let as_viewer = [("APITAP_TOKEN", viewer_token.as_str())];
    let as_operator = [("APITAP_TOKEN", operator_token.as_str())];
    let db = cluster.out_path("secure.db");
    let file = |name: &str, text: &str| -> anyhow::Result<String> {
        let path = cluster.out_path(format!("{name}.yaml"));
        std::fs::write(&path, text)?;
        Ok(path.display().to_string())
    };
    let in_a = file("in-a", &pipeline("in-a", "a", "", &db))?;
    let in_b = file("in-b", &pipeline("in-b", "b", "", &db))?;
    refused(
        &cluster.ctl_with(&as_viewer, &["submit", &in_a])?,
        "a viewer submitting",
        "role viewer",
    );
    let out = cluster.ctl_with(&as_operator, &["submit", &in_a])?;
    assert!(out.status.success(), "operator of a in a: {}", stderr(&out));
    refused(
        &cluster.ctl_with(&as_operator, &["submit", &in_b])?,
        "an operator of a submitting to b",
        "namespace \"b\"",
    );
    cluster.ctl_ok(&["submit", &in_b])?;
    // Pipelines named alike in two namespaces coexist; -n picks one.
    let alike = file("alike", &pipeline("in-b", "a", "", &db))?;
    let out = cluster.ctl_with(&as_operator, &["submit", "--no-run", &alike])?;
    assert!(
        out.status.success(),
        "a/in-b beside b/in-b: {}",
        stderr(&out)
    );
    let describe = |ns: &str| cluster.ctl_json(&["-n", ns, "describe", "pipeline", "in-b"]);
    assert_eq!(describe("a")?["namespace"], "a");
    assert_eq!(describe("b")?["namespace"], "b");
    refused(
        &cluster.ctl_with(&as_operator, &["-n", "b", "submit", &alike])?,
        "-n that disagrees with the file's namespace",
        "set `metadata.namespace: b` in the file",
    );
    let seen = cluster.ctl_with(&as_viewer, &["-o", "json", "-A", "get", "pipelines"])?;
    let seen: Value = serde_json::from_slice(&seen.stdout)?;
    let mut names: Vec<(&str, &str)> = seen
        .as_array()
        .expect("pipelines")
        .iter()
        .filter_map(|p| Some((p["namespace"].as_str()?, p["name"].as_str()?)))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [("a", "in-a"), ("a", "in-b")],
        "a viewer of a sees only a, even with -A"
    );
    refused(
        &cluster.ctl_with(&as_operator, &["-n", "b", "delete", "in-b"])?,
        "an operator of a deleting b's pipeline",
        "namespace \"b\"",
    );
    let out = cluster.ctl_with(&as_operator, &["-n", "a", "delete", "in-b"])?;
    assert!(out.status.success(), "deleting a/in-b: {}", stderr(&out));
    assert_eq!(
        describe("b")?["name"],
        "in-b",
        "b/in-b stays when a/in-b goes"
    );

    // A revoked token stops working at once.
    cluster.ctl_ok(&[
        "token",
        "revoke",
        viewer["info"]["id"].as_str().expect("id"),
    ])?;
    refused(
        &cluster.ctl_with(&as_viewer, &["get", "pipelines"])?,
        "a revoked token",
        "not valid here",
    );

    // The v1/v2 retry trick: v1 names a secret, v2 does not, and v1's run is retried.
    let v1 = file(
        "trick-v1",
        &pipeline(
            "trick",
            "default",
            "&key=${AWS_SECRET_ACCESS_KEY}&x=/missing",
            &db,
        )
        .replace("/v1/limit_offset", "/v1/no-such-endpoint"),
    )?;
    let run_id = submit_with(&cluster, &[("AWS_SECRET_ACCESS_KEY", "v1-value")], &v1)?;
    let info = cluster.wait_for_run(run_id, Duration::from_secs(60))?;
    assert_eq!(info["state"], "failed", "{info:#}");
    let v2 = file("trick-v2", &pipeline("trick", "default", "", &db))?;
    cluster.ctl_ok(&["submit", "--no-run", &v2])?;
    cluster.ctl_ok(&["run", "retry", &run_id.to_string()])?;
    let info = wait_finished(&cluster, run_id)?;
    assert_eq!(info["state"], "failed", "{info:#}");
    let queries: Vec<String> = cluster
        .mock
        .state()
        .requests()
        .into_iter()
        .map(|r| r.query)
        .collect();
    let leaked = queries
        .iter()
        .filter(|q| q.contains("worker-own-credential"))
        .count();
    assert_eq!(
        leaked, 0,
        "the worker's own credential reached the upstream"
    );
    // The retried run used the values its own version was submitted with, twice now.
    let own = queries
        .iter()
        .filter(|q| q.contains("key=v1-value"))
        .count();
    assert!(
        own >= 2,
        "the run's own secret on both attempts: {queries:?}"
    );

    // An upstream that echoes the key into its error body: the shard's error shows `***`.
    let echo = file(
        "echo",
        &pipeline("echo", "default", "&key=${ECHOED_KEY}", &db)
            .replace("/v1/limit_offset", "/v1/echo_error"),
    )?;
    let run_id = submit_with(&cluster, &[("ECHOED_KEY", "echoed-key-73a1")], &echo)?;
    let info = cluster.wait_for_run(run_id, Duration::from_secs(60))?;
    let error = info["shards"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("HTTP 400"), "{info:#}");
    assert!(
        !error.contains("echoed-key-73a1") && error.contains("***"),
        "{error}"
    );

    // The audit trail names who did what, including what was refused.
    let audit = cluster.ctl_json(&["audit"])?;
    let entries = audit.as_array().expect("audit entries");
    let find = |action: &str, actor: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["actor"].as_str().is_some_and(|a| a.contains(actor))
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(outcome))
        })
    };
    assert!(find("token-create", "first-admin", "ok"), "{audit:#}");
    assert!(find("token-revoke", "first-admin", "ok"), "{audit:#}");
    assert!(find("submit", "ops-a", "ok"), "{audit:#}");
    assert!(find("delete", "ops-a", "ok"), "{audit:#}");
    assert!(find("retry", "first-admin", "ok"), "{audit:#}");
    Ok(())
}

/// The run after a retry, once it is finished again.
/// `apitapctl submit FILE` with `env` set, which must succeed; the started run's id.
fn submit_with(cluster: &TestCluster, env: &[(&str, &str)], file: &str) -> anyhow::Result<u64> {
    let out = cluster.ctl_with(env, &["-o", "json", "submit", file])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout)?;
    Ok(run["run_id"].as_u64().expect("run id"))
}

fn wait_finished(cluster: &TestCluster, run_id: u64) -> anyhow::Result<Value> {
    apitap_chaos::testbed::wait::until("the retried run to finish", Duration::from_secs(60), || {
        let info = cluster.run_info(run_id).ok()?;
        let state = info["state"].as_str()?;
        (state != "pending" && state != "running" && info["shards"][0]["attempts"].as_u64()? >= 2)
            .then_some(info)
    })
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_values_are_sealed_at_rest_and_survive_a_key_rotation() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .tls()
        .coordinators(1)
        .workers(1)
        .records(100)
        .start()
        .await?;
    const VALUE: &str = "s3cret-value-5f1e";
    let db = cluster.out_path("sealed.db");
    let path = cluster.out_path("sealed.yaml");
    std::fs::write(
        &path,
        pipeline("sealed", "default", "&tag=${SEALED_SECRET}", &db),
    )?;
    let path = path.display().to_string();
    let out = cluster.ctl_with(
        &[("SEALED_SECRET", VALUE)],
        &["-o", "json", "submit", &path],
    )?;
    assert!(out.status.success(), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout)?;
    let run_id = run["run_id"].as_u64().expect("run id");
    fixture::wait_succeeded(&cluster, run_id, Duration::from_secs(60))?;
    let seen = |cluster: &TestCluster| {
        cluster
            .mock
            .state()
            .requests()
            .iter()
            .filter(|r| r.query.contains(VALUE))
            .count()
    };
    let first = seen(&cluster);
    assert!(first > 0, "the worker got the opened value");

    let data_dir = cluster.coordinators[0].data_dir.clone();
    assert_eq!(
        files_containing(&data_dir, VALUE.as_bytes()),
        Vec::<std::path::PathBuf>::new(),
        "a secret value in the coordinator's files"
    );
    let describe = cluster.ctl_ok(&["-o", "json", "describe", "pipeline", "sealed"])?;
    assert!(!describe.contains(VALUE), "{describe}");
    assert_eq!(
        files_containing(&cluster.logs(), VALUE.as_bytes()),
        Vec::<std::path::PathBuf>::new(),
        "a secret value in the logs"
    );

    // Rotation: a new key first, the old one still there; reseal; drop the old key.
    let key_file = cluster.out_path("tls/secrets.key");
    let old = std::fs::read_to_string(&key_file)?;
    let old_key = old.split_whitespace().nth(1).expect("old key").to_string();
    let new_key = apitap_chaos::testbed::cluster::random_key();
    let restart = |cluster: &mut TestCluster| -> anyhow::Result<()> {
        cluster
            .coordinator_proc(0)
            .expect("running")
            .terminate(Duration::from_secs(10));
        cluster.start_coordinator(0)?;
        cluster.wait_for_leader(Duration::from_secs(30))?;
        Ok(())
    };
    apitap_chaos::testbed::cluster::write_secrets_key(
        &key_file,
        &[("k2", &new_key), ("k1", &old_key)],
    )?;
    restart(&mut cluster)?;
    let rotated = cluster.ctl_json(&["secrets", "rotate-key"])?;
    assert_eq!(rotated["key_id"], "k2", "{rotated:#}");
    // The pipeline's values and its run's copy.
    assert_eq!(rotated["resealed"], 2, "{rotated:#}");
    apitap_chaos::testbed::cluster::write_secrets_key(&key_file, &[("k2", &new_key)])?;
    restart(&mut cluster)?;
    let again: Value = cluster.ctl_json(&["run", "sealed"])?;
    let run_id = again["run_id"].as_u64().expect("run id");
    fixture::wait_succeeded(&cluster, run_id, Duration::from_secs(60))?;
    assert!(
        seen(&cluster) > first,
        "the value opened under the new key reached the upstream"
    );
    let audit = cluster.ctl_json(&["audit"])?;
    assert!(
        audit
            .as_array()
            .expect("audit")
            .iter()
            .any(|e| e["action"] == "secrets-reseal" && e["outcome"] == "ok"),
        "{audit:#}"
    );
    Ok(())
}
