//! What each RPC needs, and whether a caller has it: the whole authorization table in one
//! place, so that a new RPC without an entry is refused rather than open.

use apitap_proto::identity::Identity;
use tonic::Status;

use super::{Caller, Mode};
use crate::state::access::Role;

/// What an RPC requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A member coordinator (any coordinator while this node has no membership yet).
    Raft,
    /// A worker (which may then only speak for itself).
    Worker,
    /// A token with at least this role.
    Role(Role),
    /// An admin token, or any user certificate while the node is uninitialised.
    Init,
}

/// The requirement of the RPC at `path` (`/apitap.v1.Service/Method`); `None` for a path
/// this server does not know, which is refused.
pub fn need(path: &str) -> Option<Need> {
    let (service, method) = path.strip_prefix("/apitap.v1.")?.split_once('/')?;
    Some(match (service, method) {
        ("RaftService", _) => Need::Raft,
        ("WorkerService", _) => Need::Worker,
        (
            "ControlService",
            "ListPipelines" | "GetPipeline" | "ListRuns" | "GetRun" | "ClusterStatus"
            | "ListRateLimits",
        ) => Need::Role(Role::Viewer),
        (
            "ControlService",
            "SubmitPipeline" | "DeletePipeline" | "StartRun" | "CancelRun" | "RetryRun",
        ) => Need::Role(Role::Operator),
        // Rate-limit keys are shared by every namespace that calls the same API.
        (
            "ControlService",
            "ClusterAdd" | "ClusterRemove" | "SetRateLimit" | "DeleteRateLimit" | "ClearBackoff",
        ) => Need::Role(Role::Admin),
        ("ControlService", "ClusterInit") => Need::Init,
        // The audit trail spans every namespace.
        (
            "AccessService",
            "CreateToken" | "ListTokens" | "RevokeToken" | "RotateSecretsKey" | "ListAudit",
        ) => Need::Role(Role::Admin),
        _ => return None,
    })
}

/// What the auth layer knows of this node when it decides.
pub struct Context<'a> {
    pub mode: Mode,
    /// Voters and learners of the current membership (empty: not initialised).
    pub members: &'a [u64],
}

/// Allows the call, or says who asked for what and what they lack.
pub fn authorize(ctx: &Context<'_>, caller: &Caller, path: &str) -> Result<(), Status> {
    let Some(need) = need(path) else {
        return Err(Status::permission_denied(format!(
            "{path} is not an ApiTap RPC this coordinator serves"
        )));
    };
    if ctx.mode == Mode::Insecure && matches!(caller, Caller::Anonymous) {
        return Ok(());
    }
    let who = caller.describe();
    let deny = |lack: String| {
        Err(Status::permission_denied(format!(
            "{who} may not call {path}: {lack}"
        )))
    };
    match need {
        Need::Raft => match caller {
            Caller::Node(Identity::Coordinator(id))
                if ctx.members.is_empty() || ctx.members.contains(id) =>
            {
                Ok(())
            }
            Caller::Node(Identity::Coordinator(id)) => deny(format!(
                "coordinator {id} is not a member of this cluster (add it with `apitapctl cluster add`)"
            )),
            _ => deny("only member coordinators speak Raft".into()),
        },
        Need::Worker => match caller {
            Caller::Node(Identity::Worker(_)) => Ok(()),
            _ => deny("only workers (certificate apitap://worker/<id>) call WorkerService".into()),
        },
        Need::Init => match caller {
            _ if !ctx.members.is_empty() => Err(Status::already_exists(
                "the cluster is already initialized",
            )),
            Caller::Node(Identity::User(_)) => Ok(()),
            Caller::Token { token, .. } if token.role == Role::Admin => Ok(()),
            _ => deny("initialising a cluster needs a user certificate or an admin token".into()),
        },
        Need::Role(role) => match caller.role() {
            Some(has) if has >= role => Ok(()),
            Some(has) => deny(format!(
                "it has role {}, and this needs {}",
                has.as_str(),
                role.as_str()
            )),
            None => Err(Status::unauthenticated(format!(
                "{who} may not call {path}: it needs a token with role {} (apitapctl --token \
                 or APITAP_TOKEN; an admin creates one with `apitapctl token create`)",
                role.as_str()
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::access::TokenRecord;

    fn token(role: Role) -> Caller {
        Caller::Token {
            token: TokenRecord {
                id: "abc".into(),
                name: "t".into(),
                role,
                namespaces: vec!["a".into()],
                hash: String::new(),
                created_at_ms: 0,
                created_by: String::new(),
                expires_at_ms: None,
            },
            cert: None,
        }
    }

    const SUBMIT: &str = "/apitap.v1.ControlService/SubmitPipeline";
    const GET: &str = "/apitap.v1.ControlService/GetRun";
    const ADD: &str = "/apitap.v1.ControlService/ClusterAdd";
    const APPEND: &str = "/apitap.v1.RaftService/AppendEntries";
    const BEAT: &str = "/apitap.v1.WorkerService/Heartbeat";

    fn enforced(members: &[u64]) -> Context<'_> {
        Context {
            mode: Mode::Enforced,
            members,
        }
    }

    #[test]
    fn roles_are_ordered_and_each_rpc_needs_its_own() {
        let ctx = enforced(&[1, 2, 3]);
        assert!(authorize(&ctx, &token(Role::Viewer), GET).is_ok());
        let e = authorize(&ctx, &token(Role::Viewer), SUBMIT).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("role viewer") && e.message().contains("needs operator"));
        assert!(authorize(&ctx, &token(Role::Operator), SUBMIT).is_ok());
        assert!(authorize(&ctx, &token(Role::Operator), ADD).is_err());
        assert!(authorize(&ctx, &token(Role::Admin), ADD).is_ok());
    }

    #[test]
    fn nodes_reach_only_their_own_service() {
        let ctx = enforced(&[1, 2, 3]);
        let worker = Caller::Node(Identity::Worker("w".into()));
        let coordinator = Caller::Node(Identity::Coordinator(2));
        let stranger = Caller::Node(Identity::Coordinator(9));
        assert!(authorize(&ctx, &worker, BEAT).is_ok());
        assert!(authorize(&ctx, &worker, APPEND).is_err());
        assert_eq!(
            authorize(&ctx, &worker, ADD).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(authorize(&ctx, &coordinator, APPEND).is_ok());
        assert!(authorize(&ctx, &coordinator, BEAT).is_err());
        assert!(authorize(&ctx, &stranger, APPEND)
            .unwrap_err()
            .message()
            .contains("not a member"));
        // A node being added has no membership yet: the leader's first append gets in.
        assert!(authorize(&enforced(&[]), &stranger, APPEND).is_ok());
    }

    #[test]
    fn every_rpc_of_every_service_has_an_entry() {
        // The generated services list their methods; none may fall through to "unknown".
        let protos = [
            include_str!("../../../proto/proto/control.proto"),
            include_str!("../../../proto/proto/worker.proto"),
            include_str!("../../../proto/proto/raft.proto"),
            include_str!("../../../proto/proto/access.proto"),
        ];
        for text in protos {
            let mut service = "";
            for line in text.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("service ") {
                    service = rest.split_whitespace().next().unwrap_or_default();
                }
                if let Some(rest) = line.strip_prefix("rpc ") {
                    let method = rest.split('(').next().unwrap_or_default().trim();
                    let path = format!("/apitap.v1.{service}/{method}");
                    assert!(need(&path).is_some(), "{path} has no entry in the table");
                }
            }
        }
    }

    #[test]
    fn unknown_paths_are_refused_even_in_insecure_mode() {
        let ctx = Context {
            mode: Mode::Insecure,
            members: &[],
        };
        assert!(authorize(&ctx, &Caller::Anonymous, SUBMIT).is_ok());
        assert!(authorize(&ctx, &Caller::Anonymous, "/grpc.reflection.v1/Info").is_err());
        // A token sent in insecure mode still counts.
        assert!(authorize(&ctx, &token(Role::Viewer), SUBMIT).is_err());
    }

    #[test]
    fn init_only_on_an_uninitialised_node() {
        let user = Caller::Node(Identity::User("ops".into()));
        let init = "/apitap.v1.ControlService/ClusterInit";
        assert!(authorize(&enforced(&[]), &user, init).is_ok());
        assert_eq!(
            authorize(&enforced(&[1]), &user, init).unwrap_err().code(),
            tonic::Code::AlreadyExists
        );
        let worker = Caller::Node(Identity::Worker("w".into()));
        assert!(authorize(&enforced(&[]), &worker, init).is_err());
    }
}
