//! Mutual TLS on every gRPC link: three coordinators replicate over it, workers take and
//! report leases over it and load the exact dataset, and apitapctl gets in only with a
//! certificate from the cluster's CA.

use std::process::Command;
use std::time::Duration;

use apitap_chaos::testbed::{bins, certs, TestCluster};
use apitap_cluster_tests::{fixture, pipelines};

const RECORDS: u64 = 600;

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_with_mutual_tls_loads_and_admits_only_its_own_clients() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .tls()
        .coordinators(3)
        .workers(2)
        .records(RECORDS)
        .start()
        .await?;
    let status = cluster.cluster_status()?;
    let members = status["members"].as_array().map_or(0, Vec::len);
    assert_eq!(members, 3, "three coordinators joined over TLS: {status:#}");

    let db = cluster.out_path("secure.db");
    let yaml = pipelines::sharded_sqlite("secure", RECORDS, 3, 50, &db);
    let run = cluster.submit("secure", &yaml)?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(120))?;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT id) FROM secure")
            .fetch_one(&pool)
            .await?;
    assert_eq!((rows as u64, distinct as u64), (RECORDS, RECORDS));

    // Without a certificate, with another CA's, and with the right CA but a client
    // certificate the cluster's CA did not sign (the server must refuse it), apitapctl is
    // turned away.
    let other = certs::generate(&cluster.out_path("other-ca"))?;
    let mine = cluster
        .certs
        .clone()
        .expect("a TLS cluster has certificates");
    let foreign_client = vec![
        ("APITAP_TLS_CA".to_string(), mine.ca.display().to_string()),
        (
            "APITAP_TLS_CERT".to_string(),
            other.client_cert.display().to_string(),
        ),
        (
            "APITAP_TLS_KEY".to_string(),
            other.client_key.display().to_string(),
        ),
    ];
    let cases: [(&str, Vec<(String, String)>); 3] = [
        ("no TLS settings", Vec::new()),
        ("a certificate from another CA", other.client_env()),
        ("a client certificate the CA did not sign", foreign_client),
    ];
    // The same command with the cluster's own client certificate is let in.
    let ok = cluster.ctl_json(&["cluster", "status"])?;
    assert_eq!(ok["members"].as_array().map_or(0, Vec::len), 3);
    for (what, env) in cases {
        let out = Command::new(bins::path("apitapctl")?)
            .args(["--timeout", "2s", "--coordinator"])
            .arg(cluster.coordinator_addrs().join(","))
            .args(["cluster", "status"])
            .env_remove("APITAP_TLS_CA")
            .env_remove("APITAP_TLS_CERT")
            .env_remove("APITAP_TLS_KEY")
            .envs(env)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: admitted\n{stderr}");
        assert!(
            stderr.contains("--tls-ca"),
            "{what}: no hint at TLS ({:?})\n{stderr}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(())
}
