//! `cluster status|init|add|remove`.

use apitap_proto::v1::{
    ClusterAddRequest, ClusterInitRequest, ClusterRemoveRequest, ClusterStatusRequest,
    ClusterStatusResponse,
};

use crate::cli::Format;
use crate::client::Client;
use crate::output::{self, table};

fn print_status(s: &ClusterStatusResponse, format: Format) {
    if output::structured(format, s) {
        return;
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
    let rows: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| {
            vec![
                m.node_id.to_string(),
                m.addr.clone(),
                m.role.clone(),
                if m.voter { "voter" } else { "learner" }.into(),
                m.matched_index.to_string(),
                if m.reachable { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "ADDRESS",
            "ROLE",
            "MEMBERSHIP",
            "MATCHED",
            "REACHABLE",
        ],
        &rows,
    );
    outln!();
    if s.workers.is_empty() {
        outln!("no workers registered");
    } else {
        let rows: Vec<Vec<String>> = s
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.worker_id.clone(),
                    w.addr.clone(),
                    if w.live { "live" } else { "gone" }.into(),
                    format!("{}/{}", w.leases, w.slots),
                    format!("{}ms", w.last_heartbeat_ms_ago),
                ]
            })
            .collect();
        table(
            &["WORKER", "ADDRESS", "STATUS", "LEASES", "LAST HEARTBEAT"],
            &rows,
        );
    }
}

pub async fn status(client: &mut Client, format: Format) -> anyhow::Result<i32> {
    let s = client
        .call(|mut c| async move { c.cluster_status(ClusterStatusRequest {}).await })
        .await?;
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
) -> anyhow::Result<i32> {
    let s = client
        .call(|mut c| {
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

pub async fn remove(client: &mut Client, format: Format, node_id: u64) -> anyhow::Result<i32> {
    let s = client
        .call(|mut c| async move { c.cluster_remove(ClusterRemoveRequest { node_id }).await })
        .await?;
    print_status(&s, format);
    Ok(0)
}
