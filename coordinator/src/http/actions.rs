//! The run actions (run now, cancel, retry): the same `ControlService` handlers apitapctl
//! calls, so the namespace check, the audit record and the command are theirs. Only the
//! leader acts; a follower answers 421 with the leader.

use actix_web::{web, HttpResponse};
use apitap_proto::v1::control_service_server::ControlService;
use apitap_proto::v1::{GetRunRequest, RunInfo, StartRunRequest};
use tonic::Status;

use super::auth::{self, Via};
use super::context::Ctx;
use super::model::ActionReply;
use super::reply::{self, ErrorBody};
use crate::api::control::ControlApi;
use crate::auth::Caller;
use crate::node::Node;

/// What an action does, as the `ControlService` request it makes.
pub enum Action {
    RunNow { namespace: String, name: String },
    Cancel(u64),
    Retry(u64),
}

impl Action {
    /// Run the pipeline named by a `{namespace}/{name}` path now.
    pub fn run_now(path: web::Path<(String, String)>) -> Self {
        let (namespace, name) = path.into_inner();
        Action::RunNow { namespace, name }
    }

    fn rpc(&self) -> &'static str {
        match self {
            Action::RunNow { .. } => "StartRun",
            Action::Cancel(_) => "CancelRun",
            Action::Retry(_) => "RetryRun",
        }
    }
}

/// Why an action was not done.
#[derive(Debug)]
pub enum Refusal {
    /// The auth policy or the `ControlService` handler refused it.
    Status(Status),
    /// This node is not the leader.
    NotLeader,
}

impl Refusal {
    /// The refusal as the JSON API answers it.
    pub fn json(&self, node: &Node) -> HttpResponse {
        match self {
            Refusal::Status(s) => reply::refused(node, s),
            Refusal::NotLeader => reply::not_leader(node),
        }
    }
}

/// Does `action` for the caller of `req` on the leader, through the `ControlService`
/// handler (which checks the namespace and writes the audit record); a cookie-borne post
/// must pass the Origin check. Returns the run afterwards.
pub async fn act(cx: &Ctx, action: Action) -> Result<RunInfo, Refusal> {
    let (caller, via): (Caller, Via) = cx.authorize(action.rpc()).map_err(Refusal::Status)?;
    auth::check_origin(&cx.req, via).map_err(Refusal::Status)?;
    if !cx.node.is_leader() {
        return Err(Refusal::NotLeader);
    }
    let api = ControlApi {
        node: cx.node.clone().into_inner(),
    };
    let result = match action {
        Action::RunNow { namespace, name } => {
            let r = StartRunRequest {
                namespace,
                pipeline: name,
            };
            api.start_run(with_caller(r, &caller)).await
        }
        Action::Cancel(run_id) => {
            api.cancel_run(with_caller(GetRunRequest { run_id }, &caller))
                .await
        }
        Action::Retry(run_id) => {
            api.retry_run(with_caller(GetRunRequest { run_id }, &caller))
                .await
        }
    };
    result
        .map(tonic::Response::into_inner)
        .map_err(Refusal::Status)
}

/// `inner` as a request of `caller`, as the gRPC auth layer hands it on.
fn with_caller<T>(inner: T, caller: &Caller) -> tonic::Request<T> {
    let mut r = tonic::Request::new(inner);
    r.extensions_mut().insert(caller.clone());
    r
}

/// Does `action` and answers with the run, or the refusal, as JSON.
async fn acted(cx: Ctx, action: Action) -> HttpResponse {
    match act(&cx, action).await {
        Ok(run) => HttpResponse::Ok().json(ActionReply { run }),
        Err(refusal) => refusal.json(&cx.node),
    }
}

/// Starts a run of the pipeline now (role operator; on the leader).
#[utoipa::path(post, path = "/api/pipelines/{namespace}/{name}/run", tag = "action",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ActionReply), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 421, description = "not the leader", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run_now(cx: Ctx, path: web::Path<(String, String)>) -> HttpResponse {
    acted(cx, Action::run_now(path)).await
}

/// What an action on a run answers: the run after it, or why not (the same for every
/// action on a run, so described once).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its description in the OpenAPI document is used
enum RunActionAnswers {
    #[response(status = 200)]
    Done(ActionReply),
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    #[response(status = 403)]
    Forbidden(ErrorBody),
    #[response(status = 404)]
    NotFound(ErrorBody),
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// not the leader
    #[response(status = 421)]
    NotLeader(ErrorBody),
}

/// Cancels the run (role operator; on the leader).
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "action", params(("id" = u64, Path)),
    responses(RunActionAnswers), security(("bearer" = [])))]
pub async fn cancel(cx: Ctx, id: web::Path<u64>) -> HttpResponse {
    acted(cx, Action::Cancel(*id)).await
}

/// Retries the failed shards of a finished run (role operator; on the leader).
#[utoipa::path(post, path = "/api/runs/{id}/retry", tag = "action", params(("id" = u64, Path)),
    responses(RunActionAnswers), security(("bearer" = [])))]
pub async fn retry(cx: Ctx, id: web::Path<u64>) -> HttpResponse {
    acted(cx, Action::Retry(*id)).await
}
