//! Elections with a pre-vote, timed by the coordinator instead of openraft.
//!
//! openraft 0.9 has no pre-vote: a follower that stops hearing the leader for a moment (a
//! restart, a healed partition, a starved CPU) raises its term, and its higher term deposes
//! a healthy leader when they next talk. So openraft's own election timer is off
//! (`enable_elect: false`) and [`run`] starts elections instead:
//!
//! 1. A voter that has not heard from a leader for a random time in
//!    `[timeout, 2 × timeout)` asks every other voter "would you vote for me?" ([`PreVote`]),
//!    without changing any term.
//! 2. A voter says yes only if it has itself not heard from a leader for `timeout`, and the
//!    candidate's log is at least as new as its own. A leader says yes only if no quorum
//!    has answered it for `timeout`: the vote shield.
//! 3. With yes from a majority (itself included), the candidate asks openraft to elect. The
//!    voters that said yes have passed openraft's own leader lease (`election_timeout_max`
//!    is set to `timeout`), so they grant the real vote.
//!
//! A follower cut off from a healthy leader thus never raises its term: it asks, hears no,
//! and asks again later. Only a leader that a majority has lost is replaced.

use std::sync::Mutex;
use std::time::Duration;

use apitap_common::shutdown::ShutdownSignal;
use apitap_proto::v1::RaftMessage;
use futures::future::join_all;
use openraft::{LogId, ServerState};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::network::Network;
use super::{NodeId, Raft};

/// A candidate's question, sent before it raises its term.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVote {
    pub candidate: NodeId,
    /// The candidate's current term; it would campaign in the next one.
    pub term: u64,
    pub last_log_id: Option<LogId<NodeId>>,
}

/// The answer, with the reason for a no (logged by the candidate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteReply {
    pub granted: bool,
    pub reason: String,
}

/// A stopping leader's request to its chosen successor: elect now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimeoutNow {
    pub leader: NodeId,
    pub term: u64,
}

/// What this node knows when it answers a pre-vote.
#[derive(Debug, Clone)]
pub struct View {
    pub is_leader: bool,
    /// Since a leader last reached this follower (or this node's start).
    pub since_leader: Duration,
    /// Leader only: since a quorum last acknowledged this node.
    pub since_quorum_ack: Option<Duration>,
    pub term: u64,
    pub last_log_id: Option<LogId<NodeId>>,
    /// The election timeout: how long without a leader before a vote is deserved.
    pub timeout: Duration,
}

/// Whether to tell `req`'s candidate yes: the pre-vote rules (see the module docs).
pub fn answer(req: &PreVote, me: &View) -> PreVoteReply {
    let no = |reason: String| PreVoteReply {
        granted: false,
        reason,
    };
    if req.term.saturating_add(1) < me.term {
        return no(format!(
            "the candidate's term {} is behind this node's {}",
            req.term, me.term
        ));
    }
    if req.last_log_id < me.last_log_id {
        return no("the candidate's log is behind this node's".into());
    }
    if me.is_leader {
        if let Some(ack) = me.since_quorum_ack.filter(|a| *a < me.timeout) {
            return no(format!(
                "this node leads and a quorum answered it {} ms ago",
                ack.as_millis()
            ));
        }
    } else if me.since_leader < me.timeout {
        return no(format!(
            "this node heard from its leader {} ms ago",
            me.since_leader.as_millis()
        ));
    }
    PreVoteReply {
        granted: true,
        reason: String::new(),
    }
}

/// Contact times an election needs, updated by the Raft service and the timer.
#[derive(Debug)]
pub struct Election {
    pub timeout: Duration,
    /// When a leader last reached this node (its start counts, so a node that just started
    /// waits a full timeout for the leader before it asks).
    last_leader: Mutex<Instant>,
    /// Leader only: when a quorum last acknowledged this node, derived from openraft's
    /// `millis_since_quorum_ack` at the moment it was read.
    last_quorum_ack: Mutex<Option<Instant>>,
    /// Set when this node starts handing leadership off: it proposes nothing more, so its
    /// log stops growing and the successor can catch up and win.
    stepping_down: std::sync::atomic::AtomicBool,
    /// When this node last granted a vote or a pre-vote: its own election timer starts over
    /// then, as in Raft, so that two voters that both lost their leader do not stand at the
    /// same time and split the vote.
    last_granted: Mutex<Instant>,
    /// Leader only: when this node was first seen leading (by the timer, every quarter
    /// timeout at least).
    led_since: Mutex<Option<Instant>>,
}

impl Election {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            last_leader: Mutex::new(Instant::now()),
            last_quorum_ack: Mutex::new(None),
            stepping_down: Default::default(),
            led_since: Mutex::new(None),
            last_granted: Mutex::new(Instant::now()),
        }
    }

    /// This node granted a vote or a pre-vote.
    pub fn granted(&self) {
        *lock(&self.last_granted) = Instant::now();
    }

    /// When the election timer last started over: a leader heard, a vote granted.
    fn timer_start(&self) -> Instant {
        self.last_leader().max(*lock(&self.last_granted))
    }

    /// How long this leader still refuses votes: openraft's vote lease runs one election
    /// timeout from the moment a node starts to lead (plus the timer's quarter timeout of
    /// uncertainty). A hand-off waits this out, so that its successor wins in one election.
    pub fn lease_left(&self) -> Duration {
        lock(&self.led_since).map_or(Duration::ZERO, |t| {
            (t + self.timeout + self.timeout / 4).saturating_duration_since(Instant::now())
        })
    }

    /// From now on this node proposes nothing (see [`super::handoff`]).
    pub fn step_down(&self) {
        self.stepping_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn stepping_down(&self) -> bool {
        self.stepping_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A leader's append or snapshot was accepted here.
    pub fn heard_from_leader(&self) {
        *lock(&self.last_leader) = Instant::now();
    }

    /// No leader reached this node for two election timeouts: the most a healthy cluster
    /// takes to elect one.
    pub fn leader_lost(&self) -> bool {
        self.last_leader().elapsed() > self.timeout * 2
    }

    fn last_leader(&self) -> Instant {
        *lock(&self.last_leader)
    }

    /// Records the leader's quorum acknowledgement from openraft's metrics.
    fn observe(&self, raft: &Raft) {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        let leading = m.state == ServerState::Leader;
        {
            let mut since = lock(&self.led_since);
            match (leading, *since) {
                (true, None) => *since = Some(Instant::now()),
                (false, Some(_)) => *since = None,
                _ => {}
            }
        }
        let ack = match m.state {
            ServerState::Leader => {
                // Leading counts as hearing from a leader.
                self.heard_from_leader();
                m.millis_since_quorum_ack
                    .and_then(|ms| Instant::now().checked_sub(Duration::from_millis(ms)))
            }
            _ => None,
        };
        *lock(&self.last_quorum_ack) = ack;
    }

    /// This node's answer to `req`.
    pub fn answer(&self, raft: &Raft, req: &PreVote) -> PreVoteReply {
        self.observe(raft);
        let now = Instant::now();
        let view = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            View {
                is_leader: m.state == ServerState::Leader,
                since_leader: now.saturating_duration_since(self.last_leader()),
                since_quorum_ack: lock(&self.last_quorum_ack)
                    .map(|t| now.saturating_duration_since(t)),
                term: m.current_term,
                last_log_id: last_log_id(raft),
                timeout: self.timeout,
            }
        };
        let reply = answer(req, &view);
        if reply.granted {
            self.granted();
        }
        reply
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The id of this node's last log entry.
fn last_log_id(raft: &Raft) -> Option<LogId<NodeId>> {
    raft.data_metrics().borrow().last_log
}

/// A random election timeout in `[timeout, 2 × timeout)`.
fn jittered(timeout: Duration) -> Duration {
    let ms = timeout.as_millis().max(1) as u64;
    Duration::from_millis(rand::thread_rng().gen_range(ms..ms * 2))
}

/// The election timer: runs until `shutdown`, starting an election (after a pre-vote)
/// whenever this voter has gone a jittered timeout without a leader.
pub async fn run(
    raft: Raft,
    id: NodeId,
    election: std::sync::Arc<Election>,
    network: Network,
    mut shutdown: ShutdownSignal,
) {
    let mut last_attempt = Instant::now();
    let mut wait = jittered(election.timeout);
    loop {
        let since = election.timer_start().max(last_attempt);
        let due = since + wait;
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep_until(due.min(Instant::now() + election.timeout / 4)) => {}
        }
        election.observe(&raft);
        if Instant::now() < election.timer_start().max(last_attempt) + wait {
            continue;
        }
        last_attempt = Instant::now();
        wait = jittered(election.timeout);
        if let Err(e) = campaign(&raft, id, &network, election.timeout).await {
            tracing::info!(node_id = id, "no election: {e}");
        }
    }
}

/// One attempt: a pre-vote round, then openraft's election if a majority said yes.
async fn campaign(
    raft: &Raft,
    id: NodeId,
    network: &Network,
    timeout: Duration,
) -> Result<(), String> {
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    if !voters.contains(&id) || m.state == ServerState::Leader {
        return Ok(());
    }
    let req = PreVote {
        candidate: id,
        term: m.current_term,
        last_log_id: last_log_id(raft),
    };
    let asks = voters.iter().filter(|v| **v != id).filter_map(|v| {
        let addr = membership.get_node(v)?.addr.clone();
        Some(ask(network, *v, addr, &req, timeout / 2))
    });
    let replies = join_all(asks).await;
    let yes = 1 + replies.iter().filter(|(_, r)| r.granted).count();
    if yes * 2 <= voters.len() {
        let why: Vec<String> = replies
            .iter()
            .filter(|(_, r)| !r.granted)
            .map(|(v, r)| format!("node {v}: {}", r.reason))
            .collect();
        return Err(format!(
            "pre-vote won {yes} of {} voters ({})",
            voters.len(),
            why.join("; ")
        ));
    }
    tracing::info!(
        node_id = id,
        term = m.current_term + 1,
        yes,
        "pre-vote won; electing"
    );
    raft.trigger().elect().await.map_err(|e| e.to_string())
}

/// Asks `voter` at `addr`; a voter that cannot be asked counts as a no.
async fn ask(
    network: &Network,
    voter: NodeId,
    addr: String,
    req: &PreVote,
    timeout: Duration,
) -> (NodeId, PreVoteReply) {
    let no = |reason: String| PreVoteReply {
        granted: false,
        reason,
    };
    let reply = async {
        let mut client = network.client(&addr)?;
        let json = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        let mut request = tonic::Request::new(RaftMessage { json });
        request.set_timeout(timeout);
        let reply = client
            .pre_vote(request)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        serde_json::from_slice::<PreVoteReply>(&reply.into_inner().json).map_err(|e| e.to_string())
    };
    match tokio::time::timeout(timeout, reply).await {
        Ok(Ok(r)) => (voter, r),
        Ok(Err(e)) => (voter, no(format!("not asked: {e}"))),
        Err(_) => (
            voter,
            no(format!("no answer within {} ms", timeout.as_millis())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log(term: u64, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    fn follower(since_leader_ms: u64) -> View {
        View {
            is_leader: false,
            since_leader: Duration::from_millis(since_leader_ms),
            since_quorum_ack: None,
            term: 5,
            last_log_id: log(5, 10),
            timeout: Duration::from_millis(400),
        }
    }

    fn req(term: u64, last: Option<LogId<NodeId>>) -> PreVote {
        PreVote {
            candidate: 2,
            term,
            last_log_id: last,
        }
    }

    #[test]
    fn a_follower_that_hears_its_leader_says_no() {
        let r = answer(&req(5, log(5, 10)), &follower(100));
        assert!(!r.granted);
        assert!(
            r.reason.contains("heard from its leader 100 ms ago"),
            "{r:?}"
        );
        assert!(answer(&req(5, log(5, 10)), &follower(400)).granted);
    }

    #[test]
    fn a_candidate_with_an_older_log_or_term_is_refused() {
        let r = answer(&req(5, log(5, 9)), &follower(1_000));
        assert!(!r.granted && r.reason.contains("log is behind"), "{r:?}");
        let r = answer(&req(3, log(5, 10)), &follower(1_000));
        assert!(!r.granted && r.reason.contains("term 3"), "{r:?}");
        // A longer log from a newer term wins.
        assert!(answer(&req(6, log(6, 4)), &follower(1_000)).granted);
    }

    #[test]
    fn a_leader_with_a_quorum_shields_itself() {
        let mut leader = follower(0);
        leader.is_leader = true;
        leader.since_quorum_ack = Some(Duration::from_millis(50));
        let r = answer(&req(5, log(5, 10)), &leader);
        assert!(!r.granted && r.reason.contains("quorum answered it 50 ms ago"));
        // A leader cut off from its quorum lets another node take over.
        leader.since_quorum_ack = Some(Duration::from_millis(900));
        assert!(answer(&req(5, log(5, 10)), &leader).granted);
        leader.since_quorum_ack = None;
        assert!(answer(&req(5, log(5, 10)), &leader).granted);
    }

    #[test]
    fn timeouts_are_jittered_within_one_to_two_timeouts() {
        let t = Duration::from_millis(400);
        for _ in 0..200 {
            let j = jittered(t);
            assert!(j >= t && j < t * 2, "{j:?}");
        }
    }
}
