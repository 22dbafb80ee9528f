//! Coordinator errors, mapped once to gRPC statuses. openraft's errors are turned into these
//! here, in plain words, so that no openraft `Debug` output reaches a user.

use apitap_common::error::ErrorClass;
use openraft::error::{ChangeMembershipError, InitializeError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("not the leader")]
    NotLeader { leader_addr: Option<String> },
    #[error("raft: {0}")]
    Raft(String),
    #[error("storage: {0}")]
    Storage(String),
    /// A membership change was asked for while an earlier one is not committed yet
    /// (openraft's `InProgress`): Raft changes membership one step at a time.
    #[error(
        "an earlier membership change (log index {pending}) is not committed yet, and Raft \
         changes membership one step at a time"
    )]
    MembershipBusy { pending: u64 },
    /// A membership change that contradicts the membership as it is, e.g. a node id that is
    /// already a member at another address.
    #[error("{0}")]
    MembershipConflict(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidInput(_) | Error::NotFound(_) | Error::MembershipConflict(_) => {
                ErrorClass::User
            }
            Error::NotLeader { .. } | Error::Raft(_) | Error::MembershipBusy { .. } => {
                ErrorClass::Transient
            }
            Error::Storage(_) => ErrorClass::Internal,
        }
    }
}

impl From<ChangeMembershipError<u64>> for Error {
    fn from(e: ChangeMembershipError<u64>) -> Self {
        match e {
            ChangeMembershipError::InProgress(p) => Error::MembershipBusy {
                pending: p.membership_log_id.map(|l| l.index).unwrap_or(0),
            },
            ChangeMembershipError::EmptyMembership(_) => Error::MembershipConflict(
                "the change would leave the cluster without voters; a cluster keeps at least one"
                    .into(),
            ),
            ChangeMembershipError::LearnerNotFound(l) => Error::MembershipConflict(format!(
                "node {} is not a member yet; add it with `apitapctl cluster add {} HOST:PORT`",
                l.node_id, l.node_id
            )),
        }
    }
}

impl From<InitializeError<u64, openraft::BasicNode>> for Error {
    fn from(e: InitializeError<u64, openraft::BasicNode>) -> Self {
        match e {
            InitializeError::NotAllowed(_) => Error::MembershipConflict(
                "this node already has Raft state (a log or a vote): it is, or was, a member of \
                 a cluster. Add it to that cluster with `apitapctl cluster add` on its leader \
                 instead, or start it with an empty data directory"
                    .into(),
            ),
            InitializeError::NotInMembers(_) => {
                Error::Raft("this node is not in the membership it was to start with".into())
            }
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match &e {
            Error::InvalidInput(m) => tonic::Status::invalid_argument(m.clone()),
            Error::NotFound(_) => tonic::Status::not_found(e.to_string()),
            Error::NotLeader { leader_addr } => {
                let mut s = tonic::Status::unavailable("not the leader; retry on the leader");
                if let Some(addr) = leader_addr {
                    if let Ok(v) = addr.parse() {
                        s.metadata_mut().insert(apitap_proto::LEADER_HINT, v);
                    }
                }
                s
            }
            Error::Raft(m) => tonic::Status::unavailable(m.clone()),
            Error::Storage(m) => tonic::Status::internal(m.clone()),
            // ABORTED: a concurrency conflict the caller may retry (apitapctl does, for a
            // bounded time).
            Error::MembershipBusy { .. } => tonic::Status::aborted(e.to_string()),
            Error::MembershipConflict(m) => tonic::Status::failed_precondition(m.clone()),
        }
    }
}
