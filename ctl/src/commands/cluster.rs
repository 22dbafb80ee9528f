//! `cluster status|init|add|remove`.

use apitap_proto::v1::{
    ClusterAddRequest, ClusterInitRequest, ClusterRemoveRequest, ClusterStatusRequest,
    ClusterStatusResponse, WorkerInfo,
};

use std::future::Future;
use std::time::{Duration, Instant};

use apitap_common::retry::Backoff;
use apitap_proto::auth::AuthChannel;
use apitap_proto::v1::control_service_client::ControlServiceClient;
use tonic::{Code, Status};

use crate::cli::Format;
use crate::client::Client;
use crate::output::{self, table_of};

fn print_status(s: &ClusterStatusResponse, format: Format) {
    if output::structured(format, s) {
        return;
    }
    if !s.change.is_empty() {
        outln!("{}", s.change);
        outln!();
    }
    outln!("Node:      {} ({})", s.node_id, s.role);
    outln!(
        "Leader:    {}",
        if s.leader_id == 0 {
            "none".to_string()
        } else {
            format!("{} at {}", s.leader_id, s.leader_addr)
        }
    );
    outln!("Term:      {}", s.term);
    outln!(
        "Log:       last index {}, applied {}, snapshot {}",
        s.last_log_index,
        s.applied_index,
        s.snapshot_index
    );
    outln!();
    table_of(
        &[
            "NODE",
            "ADDRESS",
            "ROLE",
            "MEMBERSHIP",
            "MATCHED",
            "REACHABLE",
        ],
        &s.members,
        |m| {
            vec![
                m.node_id.to_string(),
                m.addr.clone(),
                m.role.clone(),
                if m.voter { "voter" } else { "learner" }.into(),
                m.matched_index.to_string(),
                if m.reachable { "yes" } else { "no" }.into(),
            ]
        },
    );
    if !s.elections.is_empty() {
        outln!();
        table_of(&["TERM", "LEADER", "SEEN"], &s.elections, |e| {
            vec![
                e.term.to_string(),
                if e.leader_id == 0 {
                    "none".into()
                } else {
                    e.leader_id.to_string()
                },
                format!("{} ago", crate::output::age(e.at_ms)),
            ]
        });
    }
    outln!();
    print_workers(&s.workers);
}

fn print_workers(workers: &[WorkerInfo]) {
    if workers.is_empty() {
        outln!("no workers registered");
        return;
    }
    table_of(
        &["WORKER", "ADDRESS", "STATUS", "LEASES", "LAST HEARTBEAT"],
        workers,
        |w| {
            vec![
                w.worker_id.clone(),
                w.addr.clone(),
                match (w.live, w.draining) {
                    (true, true) => "draining",
                    (true, false) => "live",
                    (false, _) => "gone",
                }
                .into(),
                format!("{}/{}", w.leases, w.slots),
                format!("{}ms", w.last_heartbeat_ms_ago),
            ]
        },
    );
}

async fn cluster_status(client: &mut Client) -> Result<ClusterStatusResponse, Status> {
    client
        .call(|mut c| async move { c.cluster_status(ClusterStatusRequest {}).await })
        .await
}

/// `get workers`: the workers of `cluster status`, alone (`-o json`: the list).
pub async fn workers(client: &mut Client, format: Format) -> anyhow::Result<i32> {
    let s = cluster_status(client).await?;
    if !output::structured(format, &s.workers) {
        print_workers(&s.workers);
    }
    Ok(0)
}

pub async fn status(client: &mut Client, format: Format) -> anyhow::Result<i32> {
    let s = cluster_status(client).await?;
    print_status(&s, format);
    Ok(0)
}

pub async fn init(client: &mut Client, format: Format) -> anyhow::Result<i32> {
    let s = client
        .call(|mut c| async move { c.cluster_init(ClusterInitRequest {}).await })
        .await?;
    print_status(&s, format);
    Ok(0)
}

pub async fn add(
    client: &mut Client,
    format: Format,
    node_id: u64,
    addr: String,
    learner: bool,
    wait: Duration,
) -> anyhow::Result<i32> {
    let s = one_at_a_time(client, wait, |mut c| {
        let addr = addr.clone();
        async move {
            c.cluster_add(ClusterAddRequest {
                node_id,
                addr,
                learner_only: learner,
            })
            .await
        }
    })
    .await?;
    print_status(&s, format);
    Ok(0)
}

pub async fn remove(
    client: &mut Client,
    format: Format,
    node_id: u64,
    wait: Duration,
) -> anyhow::Result<i32> {
    let s = one_at_a_time(client, wait, |mut c| async move {
        c.cluster_remove(ClusterRemoveRequest { node_id }).await
    })
    .await?;
    print_status(&s, format);
    Ok(0)
}

/// Runs a membership change; while the coordinator answers that an earlier one is not
/// committed yet (ABORTED), waits and asks again, for at most `wait`.
async fn one_at_a_time<F, Fut>(
    client: &mut Client,
    wait: Duration,
    mut f: F,
) -> anyhow::Result<ClusterStatusResponse>
where
    F: FnMut(ControlServiceClient<AuthChannel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<ClusterStatusResponse>, Status>>,
{
    let deadline = Instant::now() + wait;
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut attempt = 0;
    loop {
        match client.call(&mut f).await {
            Err(e) if e.code() == Code::Aborted => {
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "{}; it did not commit within {} (--wait). A change commits once a majority of \
                         the nodes it involves has it, so some of them are probably down or \
                         unreachable: check `apitapctl cluster status` (the REACHABLE column), start the \
                         nodes that are down, then run this again",
                        e.message(),
                        humantime::format_duration(wait)
                    );
                }
                if attempt == 0 {
                    eprintln!(
                        "waiting up to {} for an earlier membership change to commit",
                        humantime::format_duration(wait)
                    );
                }
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
            other => return Ok(other?),
        }
    }
}
