//! The trust boundary: who is calling ([`Caller`]) and what each caller may do, decided in
//! one tower layer ([`layer::AuthLayer`]) before any handler runs.
//!
//! - With TLS on ("enforced"), every connection carries a client certificate from the
//!   cluster's CA whose URI SAN names a coordinator, a worker or a user; people and
//!   automation add a bearer token (stored in Raft as a hash) that carries their role and
//!   namespaces. `RaftService` only serves member coordinators, `WorkerService` only
//!   workers (as themselves), `ControlService` only tokens with a sufficient role.
//! - Without TLS ("insecure", only on loopback or with `--insecure`), callers are
//!   anonymous and may do everything; a token, when sent, is still checked.

pub mod bootstrap;
pub mod layer;
pub mod policy;
pub mod token;

use apitap_proto::identity::Identity;
use tonic::{Request, Status};

use crate::state::access::{Role, TokenRecord};

/// The live token record of the bearer token `presented`, or why it is not one. The gRPC
/// layer and the HTTP API both check tokens here.
pub fn verify_token(
    state: &crate::raft::state_machine::SharedState,
    presented: &str,
) -> Result<TokenRecord, Status> {
    let unknown = || {
        Status::unauthenticated(
            "the token is not valid here (mistyped, revoked or expired); `apitapctl token list` \
             shows the live ones",
        )
    };
    let (id, secret) = token::parse(presented).ok_or_else(unknown)?;
    let record = {
        let a = state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        a.state.tokens.get(id).cloned()
    };
    let record = record
        .filter(|t| token::matches(secret, &t.hash))
        .ok_or_else(unknown)?;
    if record
        .expires_at_ms
        .is_some_and(|at| at <= apitap_common::time::now_ms())
    {
        return Err(Status::unauthenticated(format!(
            "token {} ({}) has expired; ask an admin for a new one",
            record.id, record.name
        )));
    }
    Ok(record)
}

/// Whether calls are authenticated (decided by the configuration).
pub use crate::config::AuthMode as Mode;

/// Who made a call, as the auth layer established it; handlers find it in the request's
/// extensions.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Insecure mode without a token.
    Anonymous,
    /// A certificate identity without a token (nodes).
    Node(Identity),
    /// A person or automation with a valid token (and, with TLS, its certificate).
    Token {
        token: TokenRecord,
        cert: Option<Identity>,
    },
}

impl Caller {
    /// The caller of `req`. Without the auth layer (a handler called directly) it is a
    /// nobody that no check lets through.
    pub fn of<T>(req: &Request<T>) -> Caller {
        req.extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller::Node(Identity::User("unauthenticated".into())))
    }

    /// How the audit trail and error messages name this caller.
    pub fn describe(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous (insecure mode)".into(),
            Caller::Node(id) => id.uri(),
            Caller::Token { token, .. } => {
                format!(
                    "token {} ({}, {})",
                    token.id,
                    token.name,
                    token.role.as_str()
                )
            }
        }
    }

    /// The role this caller acts with on `ControlService`; `None` for nodes.
    pub fn role(&self) -> Option<Role> {
        match self {
            Caller::Anonymous => Some(Role::Admin),
            Caller::Node(_) => None,
            Caller::Token { token, .. } => Some(token.role),
        }
    }

    /// Whether this caller may see objects of namespace `ns` (others are hidden from its
    /// listings and reads as if they did not exist).
    pub fn sees(&self, ns: &str) -> bool {
        match self {
            Caller::Anonymous => true,
            Caller::Node(_) => false,
            Caller::Token { token, .. } => token.covers(ns),
        }
    }

    /// Refuses unless this caller may act on objects of namespace `ns`.
    pub fn check_namespace(&self, ns: &str, what: &str) -> Result<(), Status> {
        if self.sees(ns) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{} may not {what} in namespace {ns:?}: its namespaces are {}; ask an admin \
                 for a token that covers {ns:?}",
                self.describe(),
                match self {
                    Caller::Token { token, .. } => token.namespaces.join(","),
                    _ => "none".into(),
                }
            )))
        }
    }

    /// Refuses unless this caller is worker `worker_id` (or anonymous in insecure mode):
    /// a worker may only speak for itself.
    pub fn check_worker(&self, worker_id: &str) -> Result<(), Status> {
        match self {
            Caller::Anonymous => Ok(()),
            Caller::Node(Identity::Worker(id)) if id == worker_id => Ok(()),
            other => Err(Status::permission_denied(format!(
                "{} may not act as worker {worker_id:?}: a worker's certificate must name \
                 apitap://worker/{worker_id}",
                other.describe()
            ))),
        }
    }
}
