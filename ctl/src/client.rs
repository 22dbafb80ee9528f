//! The `ControlService` client: [`LeaderClient`] with the control stub on top.

use std::future::Future;
use std::time::Duration;

use apitap_proto::auth::AuthChannel;
use apitap_proto::client::LeaderClient;
use apitap_proto::tls::Tls;
use apitap_proto::v1::control_service_client::ControlServiceClient;
use tonic::Status;

pub struct Client {
    inner: LeaderClient,
}

impl Client {
    pub fn new(addrs: Vec<String>, timeout: Duration, tls: Option<Tls>) -> Self {
        Self {
            inner: LeaderClient::new(addrs, timeout).with_tls(tls),
        }
    }

    /// Runs `f` against the leader, retrying on unavailability until the deadline.
    pub async fn call<T, F, Fut>(&mut self, mut f: F) -> Result<T, Status>
    where
        F: FnMut(ControlServiceClient<AuthChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.inner
            .call(|ch| f(ControlServiceClient::new(ch).max_decoding_message_size(64 << 20)))
            .await
    }
}
