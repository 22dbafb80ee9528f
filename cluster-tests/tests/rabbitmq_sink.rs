//! The RabbitMQ sink end to end, on a throwaway RabbitMQ node: a sharded run publishes a
//! message for every record (at least once: a duplicate must carry the same message_id as
//! the first copy), also when a frozen zombie worker wakes up and publishes after its shard
//! moved on; the sink refuses the zombie's commit, so its checkpoint never counts. A worker
//! that aborts between a page's confirms and its checkpoint entry makes the next lease
//! publish that page again: duplicates, each under the first copy's message_id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use apitap_chaos::testbed::rabbitmq::read_messages;
use apitap_chaos::testbed::{pipeline_doc, wait, ClusterBuilder, TempRabbitmq, TestCluster};
use apitap_cluster_tests::fixture;

const RECORDS: u64 = 1_200;

fn pipeline(name: &str, node: &TempRabbitmq, shards: u32) -> String {
    let sink = format!(
        r#"rabbitmq: {{ url: "{}", exchange: amq.direct, routing_key: {name}, queue: {name} }}"#,
        node.url_with_secret("RABBITMQ_PASSWORD")
    );
    pipeline_doc::sharded(name, RECORDS, shards, &sink)
}

/// One coordinator and two workers with 2 s leases over the mock records; the node's
/// password is the secret `RABBITMQ_PASSWORD` of the submits.
fn builder(node: &TempRabbitmq) -> ClusterBuilder {
    TestCluster::builder()
        .coordinators(1)
        .workers(2)
        .records(RECORDS)
        .lease_ttl(Duration::from_secs(2))
        .secret("RABBITMQ_PASSWORD", &node.password)
}

/// Every id 1..=RECORDS has a message; every copy of a record carries one message_id and
/// no message_id names two records. Returns the number of duplicate copies.
async fn assert_at_least_once(node: &TempRabbitmq, queue: &str) -> anyhow::Result<usize> {
    let messages = read_messages(&node.url(), queue).await?;
    let mut ids_of_record: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut record_of_id: BTreeMap<String, u64> = BTreeMap::new();
    for (record, message_id) in &messages {
        let record: u64 = record.parse()?;
        ids_of_record
            .entry(record)
            .or_default()
            .insert(message_id.clone());
        let first = *record_of_id.entry(message_id.clone()).or_insert(record);
        assert_eq!(first, record, "message_id {message_id} names two records");
    }
    let missing: Vec<u64> = (1..=RECORDS)
        .filter(|id| !ids_of_record.contains_key(id))
        .collect();
    assert!(missing.is_empty(), "ids missing: {missing:?}");
    let strays: Vec<_> = ids_of_record.keys().filter(|id| **id > RECORDS).collect();
    assert!(strays.is_empty(), "ids the source never served: {strays:?}");
    let renamed: Vec<_> = ids_of_record.iter().filter(|(_, m)| m.len() > 1).collect();
    assert!(
        renamed.is_empty(),
        "records re-published under another message_id: {renamed:?}"
    );
    let duplicates = messages.len() - ids_of_record.len();
    println!(
        "{queue}: {} messages for {} records, {duplicates} duplicates (same message_id)",
        messages.len(),
        ids_of_record.len()
    );
    Ok(duplicates)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_run_publishes_every_record() -> anyhow::Result<()> {
    let node = TempRabbitmq::start()?;
    let cluster = builder(&node).start().await?;
    let run = cluster.submit("rabbit", &pipeline("rabbit", &node, 4))?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(120))?;
    let duplicates = assert_at_least_once(&node, "rabbit").await?;
    assert_eq!(
        duplicates, 0,
        "a run without faults publishes each record once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_zombie_is_fenced_out_and_its_copies_share_their_ids() -> anyhow::Result<()> {
    let node = TempRabbitmq::start()?;
    let mut cluster = builder(&node)
        .worker_env("APITAP_FAULT_IGNORE_REVOCATIONS", "true")
        .start()
        .await?;
    fixture::assert_failpoints(&cluster);
    fixture::slow_source(&cluster, 150);
    let run = cluster.submit("zombie", &pipeline("zombie", &node, 1))?;
    let zombie = fixture::make_zombie(&mut cluster, run)?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    fixture::wait_commit_rejected(&cluster, &zombie)?;
    assert_at_least_once(&node, "zombie").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_confirms_and_checkpoint_repeats_the_page_under_the_same_ids(
) -> anyhow::Result<()> {
    let node = TempRabbitmq::start()?;
    let mut cluster = builder(&node).start().await?;
    fixture::assert_failpoints(&cluster);
    fixture::slow_source(&cluster, 100);
    // Armed before the run, so that worker-1's first page with rows hits the fail point.
    cluster.worker_proc(0).expect("running").kill();
    cluster.start_worker_with_env(
        0,
        &[("FAILPOINTS", "sink::rabbitmq::after_confirms=return")],
    )?;
    let run = cluster.submit("crash", &pipeline("crash", &node, 4))?;
    let status = wait::until(
        "worker-1 to abort after its confirms",
        Duration::from_secs(60),
        || cluster.workers[0].proc.as_mut().and_then(|p| p.try_wait()),
    )?;
    assert!(!status.success(), "worker-1 exited cleanly: {status}");
    cluster.start_worker(0)?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))?;
    let duplicates = assert_at_least_once(&node, "crash").await?;
    assert!(
        duplicates >= 1,
        "the page confirmed before the crash is published again by the next lease"
    );
    Ok(())
}
