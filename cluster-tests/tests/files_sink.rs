//! The files sink end to end: a sharded run into JSON Lines parts in a local folder holds
//! every record exactly once, also when a frozen zombie worker wakes up and tries to commit
//! after its shard moved on (only the sink's manifest log can stop it).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use apitap_chaos::testbed::{pipeline_doc, TestCluster};
use apitap_cluster_tests::fixture;
use apitap_common::spec::{FileFormat, FilesSink as FilesSpec};
use apitap_worker::fetch::Egress;
use apitap_worker::sink::FilesSink;

const RECORDS: u64 = 1_200;

fn spec(dir: &Path) -> FilesSpec {
    FilesSpec {
        url: dir.display().to_string(),
        table: "users".into(),
        format: FileFormat::Jsonl,
        s3: None,
    }
}

fn pipeline(name: &str, dir: &Path, shards: u32) -> String {
    let sink = format!(
        r#"files: {{ url: "{}", table: users, format: jsonl }}"#,
        dir.display()
    );
    pipeline_doc::sharded(name, RECORDS, shards, &sink)
}

/// Every id 1..=RECORDS in the visible parts exactly once, and the manifests' row counts
/// agree with the part files.
async fn assert_exact(dir: &Path) -> anyhow::Result<()> {
    let parts = FilesSink::open(&spec(dir), &Egress::default())
        .await?
        .visible_parts()
        .await?;
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for (part, rows) in &parts {
        let text = std::fs::read_to_string(dir.join(part))?;
        assert_eq!(text.lines().count() as u64, *rows, "{part}");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let id = v["id"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("no id: {line}"))?;
            *seen.entry(id).or_default() += 1;
        }
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "ids seen twice: {duplicated:?}");
    let missing: Vec<u64> = (1..=RECORDS).filter(|id| !seen.contains_key(id)).collect();
    assert!(missing.is_empty(), "ids missing: {missing:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_run_writes_every_record_once() -> anyhow::Result<()> {
    let cluster = TestCluster::builder()
        .coordinators(1)
        .records(RECORDS)
        .start()
        .await?;
    let dir = cluster.out_path("files");
    let run = cluster.submit("files", &pipeline("files", &dir, 4))?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(120))?;
    assert_exact(&dir).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_zombie_cannot_make_its_parts_visible() -> anyhow::Result<()> {
    let mut cluster = TestCluster::builder()
        .coordinators(1)
        .workers(2)
        .records(RECORDS)
        .lease_ttl(Duration::from_secs(2))
        .worker_env("APITAP_FAULT_IGNORE_REVOCATIONS", "true")
        .start()
        .await?;
    fixture::assert_failpoints(&cluster);
    let dir = cluster.out_path("zombie-files");
    fixture::slow_source(&cluster, 150);
    let run = cluster.submit("zombie", &pipeline("zombie", &dir, 1))?;
    let zombie = fixture::make_zombie(&mut cluster, run)?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    fixture::wait_commit_rejected(&cluster, &zombie)?;
    assert_exact(&dir).await
}
