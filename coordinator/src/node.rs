//! One coordinator node as its parts see it: the Raft instance, the applied state, the
//! leader's soft state and the node's settings, with the Raft client calls every part uses
//! (propose, linearizable reads). Started by `server`; nothing here starts anything.

use std::sync::{Arc, Mutex, RwLockReadGuard};

use crate::config::Config;
use crate::error::Result;
use crate::liveness::Liveness;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::{Applied, SharedState};
use crate::raft::{client, Raft};
use crate::state::command::{Command, CommandResult};

pub struct Node {
    pub id: u64,
    /// Address peers, workers and clients use for this node.
    pub addr: String,
    pub raft: Raft,
    /// The applied state, read directly by the API.
    pub state: SharedState,
    pub log_store: LogStore,
    pub config: Config,
    /// Leader-only soft state: worker heartbeats and lease deadlines.
    pub liveness: Mutex<Liveness>,
    /// Leader-only rate budgets.
    pub budgets: Mutex<crate::ratelimit::Budgets>,
    /// Back-offs committed on this node while it leads, pushed to watching workers.
    pub backoffs: tokio::sync::broadcast::Sender<apitap_proto::v1::BackoffEvent>,
    /// Prometheus metrics of this node, served by the admin server.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Seals secret values before they are proposed, opens them for lease hand-outs.
    pub secrets: crate::secrets::SecretBox,
    /// Contact times the election timer and pre-vote answers go by.
    pub election: Arc<crate::raft::election::Election>,
    /// The connections to the other coordinators (shared with openraft).
    pub network: crate::raft::network::Network,
    /// Elections observed and rate-limit use sampled, for the console (memory only).
    pub history: crate::history::History,
}

impl Node {
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// openraft's metrics as operators should see them: `current_leader` is cleared when
    /// this follower has not heard from that leader for two election timeouts. openraft
    /// keeps naming a dead leader until an election succeeds, which a minority of survivors
    /// cannot hold (the pre-vote stops it), so status, readiness and `/metrics` would show
    /// a leader that is gone.
    pub fn raft_metrics(&self) -> openraft::RaftMetrics<u64, openraft::BasicNode> {
        let mut m = self.raft.metrics().borrow().clone();
        if m.current_leader.is_some_and(|l| l != self.id) && self.election.leader_lost() {
            m.current_leader = None;
        }
        m
    }

    pub fn leader_addr(&self) -> Option<String> {
        client::leader_addr(&self.raft)
    }

    /// The applied state, for reading. A lock poisoned by a panicking writer is still read:
    /// the state is only written by `apply`, whole commands at a time.
    pub fn state(&self) -> RwLockReadGuard<'_, Applied> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The leader's soft state (worker heartbeats, lease deadlines).
    pub fn liveness(&self) -> std::sync::MutexGuard<'_, Liveness> {
        self.liveness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Proposes `cmd` through Raft on this node, which must be the leader and not be
    /// handing leadership off (then the caller is told to find the next leader).
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult> {
        if self.election.stepping_down() {
            return Err(crate::error::Error::NotLeader { leader_addr: None });
        }
        client::propose(&self.raft, cmd).await
    }

    /// [`Node::propose`] under `span`, which then records the outcome.
    pub async fn propose_traced(
        &self,
        cmd: Command,
        span: &tracing::Span,
    ) -> Result<CommandResult> {
        use tracing::Instrument;
        let result = self
            .propose(cmd)
            .instrument(span.clone())
            .await
            .inspect_err(|e| crate::spans::record_failure(span, e))?;
        crate::spans::record_result(span, &result);
        Ok(result)
    }

    /// [`Node::propose`], timed and counted in the node's metrics (the scheduler's proposals).
    pub async fn propose_observed(&self, cmd: Command) -> Result<CommandResult> {
        let kind = crate::metrics::ProposalKind::of(&cmd);
        let started = std::time::Instant::now();
        let result = self.propose(cmd).await;
        self.metrics
            .observe_proposal(kind, &result, started.elapsed());
        result
    }

    /// Waits until this node may serve a current read (it is the leader and knows it).
    pub async fn linearizable(&self) -> Result<()> {
        if self.election.stepping_down() {
            return Err(crate::error::Error::NotLeader { leader_addr: None });
        }
        client::linearizable(&self.raft).await
    }
}

/// A node shared by its services and tasks.
pub type SharedNode = Arc<Node>;
