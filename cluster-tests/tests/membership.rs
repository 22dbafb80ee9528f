//! `apitapctl cluster add` as bootstrap scripts use it: adding a member again is a no-op that
//! says so, the same id at another address is a clear error, and two adds sent back to back
//! while an earlier change cannot commit yet both wait for it and succeed (a short `--wait`
//! gives up and says why). No openraft
//! `Debug` output reaches the user.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use apitap_chaos::testbed::cluster::CoordinatorNode;
use apitap_chaos::testbed::{bins, free_port, wait};
use apitap_cluster_tests::fixture;
use serde_json::Value;

/// apitapctl against one coordinator only (a paused one would stall a client that tries it).
fn ctl_at(addr: &str) -> anyhow::Result<Command> {
    let mut cmd = Command::new(bins::path("apitapctl")?);
    cmd.args(["--coordinator", addr]);
    Ok(cmd)
}

fn status_at(addr: &str) -> anyhow::Result<Value> {
    let out = ctl_at(addr)?
        .args(["-o", "json", "--timeout", "2s", "cluster", "status"])
        .output()?;
    anyhow::ensure!(out.status.success(), "cluster status at {addr} failed");
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Starts `apitapctl cluster add ID ADDR` with its output in `dir/add-ID.{out,err}`.
fn spawn_add(leader: &str, id: u64, addr: &str, dir: &Path) -> anyhow::Result<Child> {
    Ok(ctl_at(leader)?
        .args(["cluster", "add", &id.to_string(), addr])
        .stdout(File::create(dir.join(format!("add-{id}.out")))?)
        .stderr(File::create(dir.join(format!("add-{id}.err")))?)
        .spawn()?)
}

fn finished(mut child: Child, what: &str) -> anyhow::Result<std::process::ExitStatus> {
    wait::until(what, Duration::from_secs(90), || {
        child.try_wait().ok().flatten()
    })
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// Neither openraft's `Debug` output nor a panic reaches the user.
fn assert_plain(text: &str) {
    for raw in ["LogId", "Some(", "leader_id", "panicked", "backtrace"] {
        assert!(!text.contains(raw), "raw output {raw:?} in: {text}");
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_add_is_idempotent_and_waits_for_an_earlier_change() -> anyhow::Result<()> {
    let mut cluster = fixture::cluster(3, 0).await?;
    // Two more coordinators, running but not members yet.
    for id in [4u64, 5] {
        cluster.coordinators.push(CoordinatorNode {
            id,
            addr: format!("127.0.0.1:{}", free_port()),
            advertise: None,
            data_dir: cluster.out.join(format!("coordinator-{id}")),
            proc: None,
            admin: None,
        });
        cluster.start_coordinator(id as usize - 1)?;
    }
    let leader_id = cluster.wait_for_leader(Duration::from_secs(30))?;
    let leader = cluster.coordinators[leader_id as usize - 1].addr.clone();
    let addrs: Vec<String> = cluster.coordinator_addrs();
    let addr = |id: u64| addrs[id as usize - 1].clone();

    // The same node again: exit 0, "already a voter".
    let follower = if leader_id == 2 { 3 } else { 2 };
    let again = cluster.ctl_ok(&["cluster", "add", &follower.to_string(), &addr(follower)])?;
    assert!(again.contains("already a voter"), "{again}");

    // The same id at another address: a clear error.
    let moved = cluster.ctl(&["cluster", "add", &follower.to_string(), "127.0.0.1:1"])?;
    let said = text(&moved);
    assert!(!moved.status.success(), "{said}");
    assert!(said.contains("already a member at"), "{said}");
    assert!(said.contains("cluster remove"), "{said}");
    assert_plain(&said);

    // Both followers paused: the leader appends the first add's change but cannot commit
    // it, and the second add, sent at once, finds that change in flight.
    let followers: Vec<usize> = (0..3).filter(|i| *i as u64 + 1 != leader_id).collect();
    for &i in &followers {
        cluster
            .coordinator_proc(i)
            .expect("running")
            .signal(libc::SIGSTOP);
    }
    let before = status_at(&leader)?["last_log_index"].as_u64().unwrap_or(0);
    let dir = cluster.out.clone();
    let first = spawn_add(&leader, 4, &addr(4), &dir)?;
    wait::until(
        "the leader to append the first change",
        Duration::from_secs(10),
        || {
            let s = status_at(&leader).ok()?;
            (s["last_log_index"].as_u64()? > before).then_some(())
        },
    )?;
    // With a short --wait it gives up, and says why and what to do.
    let gave_up = ctl_at(&leader)?
        .args(["cluster", "add", "5", &addr(5), "--wait", "1s"])
        .output()?;
    let said = text(&gave_up);
    assert!(!gave_up.status.success(), "{said}");
    assert!(said.contains("did not commit within 1s"), "{said}");
    assert!(said.contains("cluster status"), "{said}");
    assert_plain(&said);
    let second = spawn_add(&leader, 5, &addr(5), &dir)?;
    wait::until(
        "the second add to wait for the first change",
        Duration::from_secs(10),
        || {
            read(&dir, "add-5.err")
                .contains("waiting up to")
                .then_some(())
        },
    )?;
    for &i in &followers {
        cluster
            .coordinator_proc(i)
            .expect("running")
            .signal(libc::SIGCONT);
    }
    let first = finished(first, "the first add")?;
    let second = finished(second, "the second add")?;
    for (id, status) in [(4, first), (5, second)] {
        let (out, err) = (
            read(&dir, &format!("add-{id}.out")),
            read(&dir, &format!("add-{id}.err")),
        );
        assert!(status.success(), "add {id}: {status}\n{out}{err}");
        // Resumed followers may depose the leader (their election timers ran out while
        // paused), or the second add's voter step may meet the first's in flight after its
        // learner step committed; apitapctl then asks again and reports what was left.
        assert!(
            out.contains("added as a voter")
                || out.contains("already a voter")
                || out.contains("made a voter (it was a learner)"),
            "{out}"
        );
        assert_plain(&format!("{out}{err}"));
    }
    let s = status_at(&leader)?;
    let voters: BTreeSet<u64> = s["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["voter"] == true)
        .filter_map(|m| m["node_id"].as_u64())
        .collect();
    assert_eq!(voters, BTreeSet::from([1, 2, 3, 4, 5]), "{s:#}");
    Ok(())
}
