//! Coordinator errors, mapped once to gRPC statuses.

use apitap_common::error::ErrorClass;

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
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::InvalidInput(_) | Error::NotFound(_) => ErrorClass::User,
            Error::NotLeader { .. } | Error::Raft(_) => ErrorClass::Transient,
            Error::Storage(_) => ErrorClass::Internal,
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
        }
    }
}
