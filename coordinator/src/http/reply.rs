//! The HTTP answers of the JSON API's refusals: a gRPC status (from the auth policy or a
//! `ControlService` handler) mapped once to an HTTP status with a JSON body.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;
use tonic::Code;
use utoipa::ToSchema;

use crate::node::Node;

/// Every refusal of the JSON API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong and how to fix it.
    pub error: String,
    /// The leader's id, when this node is not the leader (0: none known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
    /// The leader's gRPC address, when this node is not the leader and knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_addr: Option<String>,
}

/// The HTTP status of a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `status` as an HTTP answer; an unavailable one (not the leader any more) names the leader.
pub fn refused(node: &Node, status: &tonic::Status) -> HttpResponse {
    let code = http_status(status.code());
    let (leader_id, leader_addr) = if code == StatusCode::SERVICE_UNAVAILABLE {
        leader(node)
    } else {
        (None, None)
    };
    HttpResponse::build(code).json(ErrorBody {
        error: status.message().to_string(),
        leader_id,
        leader_addr,
    })
}

/// 421 Misdirected Request: a write sent to a node that does not lead, with the leader to
/// send it to.
pub fn not_leader(node: &Node) -> HttpResponse {
    let (leader_id, leader_addr) = leader(node);
    HttpResponse::build(StatusCode::MISDIRECTED_REQUEST).json(ErrorBody {
        error: not_leader_message(node, leader_id),
        leader_id,
        leader_addr,
    })
}

/// What a node that does not lead says to a write.
pub fn not_leader_message(node: &Node, leader_id: Option<u64>) -> String {
    format!(
        "node {} is not the leader; send actions to the leader's admin address (the leader \
         is node {}; `apitapctl cluster status` lists the members)",
        node.id,
        leader_id.map_or_else(|| "unknown".into(), |l| l.to_string())
    )
}

fn leader(node: &Node) -> (Option<u64>, Option<String>) {
    (node.raft_metrics().current_leader, node.leader_addr())
}
