//! The `ControlService` client: [`LeaderClient`] with the control stub on top.

use std::future::Future;
use std::time::Duration;

use apitap_proto::auth::AuthChannel;
use apitap_proto::client::LeaderClient;
use apitap_proto::tls::Tls;
use apitap_proto::v1::access_service_client::AccessServiceClient;
use apitap_proto::v1::control_service_client::ControlServiceClient;
use tonic::Status;

pub struct Client {
    inner: LeaderClient,
}

impl Client {
    pub fn new(
        addrs: Vec<String>,
        timeout: Duration,
        tls: Option<Tls>,
        token: Option<&str>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            inner: LeaderClient::new(addrs, timeout)
                .with_tls(tls)
                .with_token(token)
                .map_err(|e| anyhow::anyhow!("--token: {e}"))?,
        })
    }

    /// Runs `f` with the `AccessService` stub (tokens, audit) against the leader.
    pub async fn access<T, F, Fut>(&mut self, mut f: F) -> Result<T, Status>
    where
        F: FnMut(AccessServiceClient<AuthChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let max = apitap_proto::limits::MAX_GRPC_MESSAGE_BYTES;
        self.inner
            .call(|ch| f(AccessServiceClient::new(ch).max_decoding_message_size(max)))
            .await
    }

    /// Sends `req` through `rpc` (e.g. `|mut c, r| async move { c.get_run(r).await }`), as
    /// [`Client::call`] does; every retry sends a copy of `req`.
    pub async fn send<R, T, F, Fut>(&mut self, req: R, rpc: F) -> Result<T, Status>
    where
        R: Clone,
        F: Fn(ControlServiceClient<AuthChannel>, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call(|c| rpc(c, req.clone())).await
    }

    /// Runs `f` against the leader, retrying on unavailability until the deadline.
    pub async fn call<T, F, Fut>(&mut self, mut f: F) -> Result<T, Status>
    where
        F: FnMut(ControlServiceClient<AuthChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.inner
            .call(|ch| {
                f(ControlServiceClient::new(ch)
                    .max_decoding_message_size(apitap_proto::limits::MAX_GRPC_MESSAGE_BYTES))
            })
            .await
    }
}
