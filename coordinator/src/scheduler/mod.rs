//! The leader's control loop. Each tick it reads the applied state and its soft state,
//! decides (pure functions), and proposes the resulting commands through Raft, each under
//! the spans of what it does (see [`crate::spans`]).

pub mod placement;
pub mod plan;
pub mod quota;
pub mod retention;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apitap_common::shutdown::ShutdownSignal;
use tracing::{Instrument, Span};

use crate::node::Node;
use crate::spans;
use plan::{Plan, PlanConfig, Planned};

const TICK: Duration = Duration::from_millis(100);

pub async fn run(node: Arc<Node>, mut shutdown: ShutdownSignal) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while shutdown.tick(&mut interval).await {
        if !node.is_leader() {
            continue;
        }
        let mut planned = tick(&node).into_iter();
        while let Some(Planned { cmd, spans }) = planned.next() {
            // A command covering several spans (a tick's grants) runs under none of them.
            let current = match spans.as_slice() {
                [one] => one.clone(),
                _ => Span::none(),
            };
            match node.propose_observed(cmd).instrument(current).await {
                Ok(result) => spans.iter().for_each(|s| spans::record_result(s, &result)),
                Err(e) => {
                    tracing::debug!(error = %e, "scheduler proposal failed");
                    spans.iter().for_each(|s| spans::record_failure(s, &e));
                    let skipped = format!("not proposed: an earlier proposal failed: {e}");
                    for rest in planned.by_ref() {
                        rest.spans
                            .iter()
                            .for_each(|s| spans::record_failure(s, &skipped));
                    }
                    break;
                }
            }
        }
    }
}

/// One tick's plan, made from the node's state under its locks (held only while planning).
fn tick(node: &Node) -> Vec<Planned> {
    let term = node.raft.metrics().borrow().current_term;
    let config = PlanConfig::from(&node.config);
    let guard = node.state();
    let mut live = node.liveness();
    let Plan {
        cmds,
        quota_deferred,
    } = plan::plan(
        &guard.state,
        &mut live,
        &config,
        term,
        Instant::now(),
        apitap_common::time::now_ms(),
    );
    if quota_deferred > 0 {
        node.metrics
            .quota_deferred_shards
            .add(quota_deferred as u64);
    }
    cmds
}
