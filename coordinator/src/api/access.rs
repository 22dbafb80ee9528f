//! `AccessService`: API tokens and the audit trail. Who may call what is decided by the
//! auth layer (`auth::policy`); this only does the work.

use std::sync::Arc;

use apitap_proto::v1::access_service_server::AccessService;
use apitap_proto::v1::*;
use tonic::{Request, Response, Status};

use super::audited;
use crate::auth::{token, Caller};
use crate::node::Node;
use crate::state::access::{Role, TokenRecord};
use crate::state::command::{self, Command, CommandResult};

/// Longest token name.
const MAX_TOKEN_NAME: usize = 128;

pub struct AccessApi {
    pub node: Arc<Node>,
}

type Reply<T> = Result<Response<T>, Status>;

fn info(t: &TokenRecord, now_ms: u64) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        name: t.name.clone(),
        role: t.role.as_str().into(),
        namespaces: t.namespaces.clone(),
        created_at_ms: t.created_at_ms,
        created_by: t.created_by.clone(),
        expires_at_ms: t.expires_at_ms.unwrap_or(0),
        expired: t.expires_at_ms.is_some_and(|at| at <= now_ms),
    }
}

fn rejected(r: CommandResult) -> Status {
    match r {
        CommandResult::Rejected { reason } => Status::failed_precondition(reason),
        other => Status::internal(format!("unexpected result {other:?}")),
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn create_token(&self, req: Request<CreateTokenRequest>) -> Reply<CreateTokenResponse> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        let role = Role::parse(&req.role).ok_or_else(|| {
            Status::invalid_argument(format!(
                "role {:?} is not one of viewer, operator, admin",
                req.role
            ))
        })?;
        if req.name.trim().is_empty() || req.name.len() > MAX_TOKEN_NAME {
            return Err(Status::invalid_argument(format!(
                "a token needs a name of 1..={MAX_TOKEN_NAME} bytes that says what it is for"
            )));
        }
        let (secret, id, hash) = token::generate();
        let now = apitap_common::time::now_ms();
        let expires_at_ms =
            (req.ttl_seconds > 0).then(|| now.saturating_add(req.ttl_seconds.saturating_mul(1000)));
        let record = TokenRecord {
            id,
            name: req.name,
            role,
            namespaces: req.namespaces,
            hash,
            created_at_ms: now,
            created_by: caller.describe(),
            expires_at_ms,
        };
        let cmd = Command::CreateToken(command::CreateToken {
            token: record.clone(),
        });
        match self.node.propose(audited(&caller, cmd)).await? {
            CommandResult::Done => Ok(Response::new(CreateTokenResponse {
                info: Some(info(&record, now)),
                token: secret,
            })),
            other => Err(rejected(other)),
        }
    }

    async fn list_tokens(&self, _: Request<ListTokensRequest>) -> Reply<ListTokensResponse> {
        let now = apitap_common::time::now_ms();
        let st = self.node.state();
        Ok(Response::new(ListTokensResponse {
            tokens: st.state.tokens.values().map(|t| info(t, now)).collect(),
        }))
    }

    async fn revoke_token(&self, req: Request<RevokeTokenRequest>) -> Reply<TokenInfo> {
        let caller = Caller::of(&req);
        let id = req.into_inner().id;
        let before = {
            let st = self.node.state();
            st.state.tokens.get(&id).cloned()
        };
        let cmd = Command::RevokeToken(command::RevokeToken { id: id.clone() });
        match self.node.propose(audited(&caller, cmd)).await? {
            CommandResult::Done => Ok(Response::new(
                before
                    .map(|t| info(&t, apitap_common::time::now_ms()))
                    .unwrap_or_default(),
            )),
            other => Err(rejected(other)),
        }
    }

    async fn rotate_secrets_key(
        &self,
        req: Request<RotateSecretsKeyRequest>,
    ) -> Reply<RotateSecretsKeyResponse> {
        let caller = Caller::of(&req);
        let secrets = &self.node.secrets;
        let Some(key_id) = secrets.current().map(str::to_string) else {
            return Err(Status::failed_precondition(
                "this coordinator has no --secrets-key-file: there is no key to seal under",
            ));
        };
        // (namespace, pipeline, version, run, stored values) of every pipeline and run with
        // secrets.
        type Sealed = (
            String,
            String,
            u64,
            Option<u64>,
            std::collections::BTreeMap<String, String>,
        );
        let all: Vec<Sealed> = {
            let st = self.node.state();
            let pipelines = st.state.pipelines.values().map(|p| {
                let (ns, name) = (p.namespace.clone(), p.name.clone());
                (ns, name, p.version, None, p.secrets.clone())
            });
            let runs = st
                .state
                .runs
                .values()
                .filter(|r| !r.secrets.is_empty())
                .map(|r| {
                    (
                        st.state.namespace_of_run(r).to_string(),
                        r.pipeline.clone(),
                        r.pipeline_version,
                        Some(r.id),
                        r.secrets.clone(),
                    )
                });
            pipelines.chain(runs).collect()
        };
        let (mut resealed, mut current) = (0, 0);
        for (namespace, name, version, run_id, stored) in all {
            if stored.values().all(|v| secrets.is_current(v)) {
                current += 1;
                continue;
            }
            let key = crate::state::model::pipeline_key(&namespace, &name);
            let plain = secrets
                .open_pipeline(&namespace, &name, &stored)
                .map_err(|e| Status::failed_precondition(format!("pipeline {key}: {e}")))?;
            let cmd = Command::ResealSecrets(command::ResealSecrets {
                secrets: secrets.seal_all(&key, &plain),
                pipeline: key,
                version,
                run_id,
            });
            match self.node.propose(audited(&caller, cmd)).await? {
                CommandResult::Done => resealed += 1,
                other => return Err(rejected(other)),
            }
        }
        Ok(Response::new(RotateSecretsKeyResponse {
            key_id,
            resealed,
            current,
        }))
    }

    async fn list_audit(&self, req: Request<ListAuditRequest>) -> Reply<ListAuditResponse> {
        let req = req.into_inner();
        let st = self.node.state();
        let mut entries: Vec<AuditEntry> = st
            .state
            .audit
            .values()
            .filter(|r| r.at_ms >= req.since_ms)
            .map(|r| AuditEntry {
                seq: r.seq,
                at_ms: r.at_ms,
                actor: r.actor.clone(),
                action: r.action.clone(),
                object: r.object.clone(),
                outcome: r.outcome.clone(),
            })
            .collect();
        if req.limit > 0 && entries.len() > req.limit as usize {
            entries.drain(..entries.len() - req.limit as usize);
        }
        Ok(Response::new(ListAuditResponse { entries }))
    }
}
