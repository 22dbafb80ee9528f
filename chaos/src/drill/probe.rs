//! Commit latency while a fault lasts: a writer that stores tiny probe pipelines (never run)
//! through whichever coordinator leads, one after the other, and times each acknowledgement.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::testbed::grpc::Submitter;
use crate::testbed::TestCluster;

/// Probe pipelines are named `<PREFIX><n>`.
pub const PREFIX: &str = "commit-probe-";

/// Numbers probe pipelines across probes, so that every name is new.
static NEXT: AtomicU64 = AtomicU64::new(0);

pub struct CommitProbe {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(Vec<f64>, u64)>,
}

impl CommitProbe {
    /// Starts writing as the cluster's admin (its first token, on a TLS cluster).
    pub fn start(cluster: &TestCluster) -> anyhow::Result<Self> {
        let tls = cluster.certs.as_ref().map(|c| c.client_tls()).transpose()?;
        let mut writer = Submitter::new(cluster.coordinator_addrs(), Duration::from_secs(10))
            .with_tls(tls)
            .with_token(cluster.token())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0u64);
            while !flag.load(Ordering::Relaxed) {
                let name = format!("{PREFIX}{}", NEXT.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                match writer.submit(&name).await {
                    Ok(()) => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(_) => failed += 1,
                }
            }
            (latencies, failed)
        });
        Ok(Self { stop, task })
    }

    /// Stops after the write under way; the latencies (ms) of the acknowledged writes and
    /// the number of writes that failed.
    pub async fn stop(self) -> (Vec<f64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
