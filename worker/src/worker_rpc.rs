//! Calls to the coordinator's `WorkerService`, made on the Raft leader through
//! [`LeaderClient`] (which finds the leader and retries until its deadline).

use std::future::Future;

use actix::prelude::*;
use apitap_proto::auth::AuthChannel;
use apitap_proto::client::LeaderClient;
use apitap_proto::limits::MAX_GRPC_MESSAGE_BYTES;
use apitap_proto::v1::worker_service_client::WorkerServiceClient;
use tonic::{Response, Status};

/// The `WorkerService` stub every call goes through: replies may be as large as the
/// cluster's gRPC message limit (a heartbeat's answer lists every lease).
pub(crate) type Stub = WorkerServiceClient<AuthChannel>;

/// Sends `req` through `rpc` (e.g. `|mut c, r| async move { c.register(r).await }`) and
/// returns the reply; every retry sends a copy of `req`.
pub(crate) async fn call<Req, T, F, Fut>(
    client: &mut LeaderClient,
    req: Req,
    rpc: F,
) -> Result<T, Status>
where
    Req: Clone,
    F: Fn(Stub, Req) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    client
        .call(|ch| {
            let stub =
                WorkerServiceClient::new(ch).max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES);
            rpc(stub, req.clone())
        })
        .await
}

/// Sends `req` in the background of actor `A` and ignores the outcome: for best-effort
/// reports whose loss the next report, or the sink's own state, makes good.
pub(crate) fn report<A, Req, T, F, Fut>(
    ctx: &mut Context<A>,
    client: &LeaderClient,
    req: Req,
    rpc: F,
) where
    A: Actor<Context = Context<A>>,
    Req: Clone + 'static,
    T: 'static,
    F: Fn(Stub, Req) -> Fut + 'static,
    Fut: Future<Output = Result<Response<T>, Status>> + 'static,
{
    let mut client = client.clone();
    ctx.spawn(actix::fut::wrap_future(async move {
        let _ = call(&mut client, req, rpc).await;
    }));
}
