//! `--local-sink-root`: a worker with a root writes a spec's relative SQLite path inside
//! the pipeline's namespace folder there, and refuses a path outside it (the run fails
//! naming the flag), so a pipeline's author cannot point the worker at its own files or at
//! another namespace's.

use std::time::Duration;

use apitap_chaos::testbed::TestCluster;
use apitap_cluster_tests::{fixture, pipelines};

#[tokio::test(flavor = "multi_thread")]
async fn local_sinks_stay_inside_the_workers_root() -> anyhow::Result<()> {
    let dir = TempRoot::new()?;
    let root = dir.0.clone();
    let cluster = TestCluster::builder()
        .coordinators(1)
        .records(120)
        .worker_env("APITAP_LOCAL_SINK_ROOT", &root.display().to_string())
        .start()
        .await?;

    // Relative: resolved against the namespace's folder.
    let inside = pipelines::sharded_sqlite("inside", 120, 2, 50, "exports/inside.db".as_ref());
    let run = cluster.submit("inside", &inside)?;
    fixture::wait_succeeded(&cluster, run, Duration::from_secs(60))?;
    assert!(root.join("default/exports/inside.db").is_file());

    // Outside (here through `..`): the shards fail with a user error naming the flag.
    let outside = pipelines::sharded_sqlite("outside", 120, 1, 50, "../outside.db".as_ref());
    let run = cluster.submit("outside", &outside)?;
    let info = cluster.wait_for_run(run, Duration::from_secs(60))?;
    assert_eq!(info["state"], "failed", "{info:#}");
    let error = info["shards"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("outside this worker's --local-sink-root"),
        "{info:#}"
    );
    assert!(!root.join("outside.db").exists());
    Ok(())
}

/// A root folder, removed when the test ends (also when it fails).
struct TempRoot(std::path::PathBuf);

impl TempRoot {
    fn new() -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(format!("apitap-local-root-{}", std::process::id()));
        std::fs::create_dir_all(&root)?;
        Ok(Self(root))
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
