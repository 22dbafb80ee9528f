//! Three coordinators over real gRPC: leader kills, full-cluster restarts, catch-up through
//! a snapshot, and a frozen follower. Every acknowledged write survives; one leader per term.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apitap_chaos::testbed::grpc::{status_of, Submitter};
use apitap_chaos::testbed::{wait, TestCluster};
use apitap_cluster_tests::fixture;

async fn three_nodes(snapshot_every: Option<u64>) -> anyhow::Result<TestCluster> {
    let mut b = TestCluster::builder().coordinators(3).workers(0);
    if let Some(n) = snapshot_every {
        b = b.snapshot_every(n);
    }
    b.start().await
}

fn leader_index(cluster: &TestCluster) -> anyhow::Result<usize> {
    let id = cluster.wait_for_leader(Duration::from_secs(30))?;
    Ok(cluster
        .coordinators
        .iter()
        .position(|c| c.id == id)
        .expect("leader is a member"))
}

/// Waits until every running node applied the same log and reports the same state digest.
async fn converged(cluster: &TestCluster, nodes: &[usize]) -> anyhow::Result<String> {
    let addrs: Vec<String> = nodes
        .iter()
        .map(|i| cluster.coordinators[*i].addr.clone())
        .collect();
    wait::until_async(
        "all nodes to agree on the state",
        Duration::from_secs(60),
        || {
            let addrs = addrs.clone();
            async move {
                let mut digests = BTreeSet::new();
                let mut applied = BTreeSet::new();
                for a in &addrs {
                    let s = status_of(a).await.ok()?;
                    digests.insert(s.state_digest);
                    applied.insert(s.applied_index);
                }
                (digests.len() == 1 && applied.len() == 1)
                    .then(|| digests.into_iter().next().unwrap())
            }
        },
    )
    .await
}

async fn submit_many(
    cluster: &TestCluster,
    prefix: &str,
    n: usize,
    clients: usize,
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut s = Submitter::new(cluster.coordinator_addrs(), Duration::from_secs(30));
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for i in (c..n).step_by(clients) {
                s.submit(&format!("{prefix}-{i}")).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_loses_no_acknowledged_submit() -> anyhow::Result<()> {
    let mut cluster = three_nodes(None).await?;
    let acked: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loop_task = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let mut s = Submitter::new(cluster.coordinator_addrs(), Duration::from_secs(10));
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("loop-{i}");
                if s.submit(&name).await.is_ok() {
                    acked.lock().unwrap().push((name, Instant::now()));
                }
                i += 1;
            }
        })
    };
    wait::until("50 acknowledged submits", Duration::from_secs(30), || {
        (acked.lock().unwrap().len() >= 50).then_some(())
    })?;
    let leader = leader_index(&cluster)?;
    let killed_at = Instant::now();
    cluster.coordinator_proc(leader).expect("running").kill();
    let before_kill = acked.lock().unwrap().len();
    wait::until(
        "50 more submits after the kill",
        Duration::from_secs(30),
        || (acked.lock().unwrap().len() >= before_kill + 50).then_some(()),
    )?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    loop_task.await?;
    let first_after = acked
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t)| *t)
        .find(|t| *t > killed_at)
        .unwrap();
    eprintln!(
        "kill to first committed write: {:?}",
        first_after - killed_at
    );

    cluster.start_coordinator(leader)?;
    converged(&cluster, &[0, 1, 2]).await?;
    let stored: BTreeSet<String> =
        Submitter::new(cluster.coordinator_addrs(), Duration::from_secs(10))
            .pipeline_names()
            .await?
            .into_iter()
            .collect();
    let acked = acked.lock().unwrap();
    let missing: Vec<_> = acked
        .iter()
        .filter(|(n, _)| !stored.contains(n))
        .map(|(n, _)| n)
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_cluster_restart_keeps_identical_state() -> anyhow::Result<()> {
    let mut cluster = three_nodes(None).await?;
    submit_many(&cluster, "keep", 60, 4).await?;
    let before = converged(&cluster, &[0, 1, 2]).await?;
    for i in 0..3 {
        cluster.coordinator_proc(i).expect("running").kill();
    }
    for i in 0..3 {
        cluster.start_coordinator(i)?;
    }
    cluster.wait_for_leader(Duration::from_secs(30))?;
    let after = converged(&cluster, &[0, 1, 2]).await?;
    assert_eq!(before, after, "state changed across a full restart");
    let names = Submitter::new(cluster.coordinator_addrs(), Duration::from_secs(10))
        .pipeline_names()
        .await?;
    assert_eq!(names.len(), 60);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_missed_5000_entries_catches_up_through_a_snapshot() -> anyhow::Result<()> {
    let mut cluster = three_nodes(Some(1000)).await?;
    let leader = leader_index(&cluster)?;
    let lagging = (leader + 1) % 3;
    cluster.coordinator_proc(lagging).expect("running").kill();
    submit_many(&cluster, "bulk", 5000, 16).await?;
    cluster.start_coordinator(lagging)?;
    converged(&cluster, &[0, 1, 2]).await?;
    let s = status_of(&cluster.coordinators[lagging].addr).await?;
    assert!(
        s.snapshots_installed >= 1,
        "node {} caught up without installing a snapshot: {s:?}",
        lagging + 1
    );
    assert_eq!(s.pipelines, 5000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_follower_loses_nothing_and_terms_never_have_two_leaders() -> anyhow::Result<()> {
    let mut cluster = three_nodes(None).await?;
    let leader = leader_index(&cluster)?;
    let follower = (leader + 1) % 3;
    let addrs = cluster.coordinator_addrs();
    let seen: Arc<Mutex<BTreeMap<u64, BTreeSet<u64>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = {
        let (seen, stop, addrs) = (seen.clone(), stop.clone(), addrs.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for a in &addrs {
                    if let Ok(s) = status_of(a).await {
                        if s.leader_id != 0 {
                            seen.lock()
                                .unwrap()
                                .entry(s.term)
                                .or_default()
                                .insert(s.leader_id);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    cluster
        .coordinator_proc(follower)
        .expect("running")
        .signal(libc::SIGSTOP);
    // Several election timeouts (150–300 ms) pass while writes go on.
    submit_many(&cluster, "paused", 100, 2).await?;
    cluster
        .coordinator_proc(follower)
        .expect("running")
        .signal(libc::SIGCONT);
    submit_many(&cluster, "resumed", 50, 2).await?;
    converged(&cluster, &[0, 1, 2]).await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    observer.await?;
    for (term, leaders) in seen.lock().unwrap().iter() {
        assert_eq!(leaders.len(), 1, "term {term} had leaders {leaders:?}");
    }
    // The pre-vote: the follower that came back after many election timeouts asked for
    // votes and heard no, so it deposed nobody. One term, one leader, all along.
    let seen = seen.lock().unwrap().clone();
    let leader_id = cluster.coordinators[leader].id;
    assert_eq!(
        seen.values().cloned().collect::<Vec<_>>(),
        vec![BTreeSet::from([leader_id])],
        "a paused follower caused an election: leaders by term {seen:?}"
    );
    let s = status_of(&cluster.coordinators[follower].addr).await?;
    assert_eq!(s.pipelines, 150);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_of_the_leader_hands_leadership_off_in_one_election() -> anyhow::Result<()> {
    let mut cluster = three_nodes(None).await?;
    let leader = leader_index(&cluster)?;
    let old = status_of(&cluster.coordinators[leader].addr).await?;
    submit_many(&cluster, "before", 20, 2).await?;
    let status = cluster
        .coordinator_proc(leader)
        .expect("running")
        .terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "the leader did not exit cleanly after SIGTERM: {status:?}"
    );
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new = wait::until_async(
        "a new leader among the two others",
        Duration::from_secs(30),
        || {
            let addr = cluster.coordinators[others[0]].addr.clone();
            async move {
                let s = status_of(&addr).await.ok()?;
                (s.leader_id != 0 && s.leader_id != old.leader_id).then_some(s)
            }
        },
    )
    .await?;
    // Handed off: exactly one election, no split vote or timeout round.
    assert_eq!(new.term, old.term + 1, "{old:?} -> {new:?}");
    let log = std::fs::read_to_string(
        cluster.log_path(&format!("coordinator-{}", cluster.coordinators[leader].id)),
    )?;
    assert!(log.contains("handed leadership off"), "{log}");
    submit_many(&cluster, "after", 20, 2).await?;
    converged(&cluster, &others).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn five_nodes_survive_two_losses_and_a_removed_member_leaves() -> anyhow::Result<()> {
    let mut cluster = fixture::cluster(5, 0).await?;
    submit_many(&cluster, "five", 20, 2).await?;
    converged(&cluster, &[0, 1, 2, 3, 4]).await?;

    // Two of five down: a majority remains and writes go on.
    let leader = leader_index(&cluster)?;
    let other = (leader + 1) % 5;
    cluster.coordinator_proc(leader).expect("running").kill();
    cluster.coordinator_proc(other).expect("running").kill();
    submit_many(&cluster, "after", 10, 1).await?;
    cluster.start_coordinator(leader)?;
    cluster.start_coordinator(other)?;
    converged(&cluster, &[0, 1, 2, 3, 4]).await?;

    // Remove node 5: the others' membership no longer lists it as a voter.
    cluster.ctl_ok(&["cluster", "remove", "5"])?;
    let s = wait::until_async(
        "node 5 to leave the voters",
        Duration::from_secs(30),
        || {
            let addr = cluster.coordinators[0].addr.clone();
            async move {
                let s = status_of(&addr).await.ok()?;
                (!s.members.iter().any(|m| m.node_id == 5 && m.voter)).then_some(s)
            }
        },
    )
    .await?;
    assert_eq!(s.members.iter().filter(|m| m.voter).count(), 4, "{s:?}");
    assert_eq!(s.pipelines, 30);
    Ok(())
}
