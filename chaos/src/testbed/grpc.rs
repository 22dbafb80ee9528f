//! Direct gRPC access to coordinators for tests and benchmarks: one node's own view
//! (`status_of`), and pipeline submits through the leader (`Submitter`).

use std::time::Duration;

use apitap_proto::client::LeaderClient;
use apitap_proto::v1::control_service_client::ControlServiceClient;
use apitap_proto::v1::{
    ClusterStatusRequest, ClusterStatusResponse, ListPipelinesRequest, SubmitPipelineRequest,
};
use tonic::transport::Endpoint;

/// The status as node `addr` itself sees it (no redirect to the leader).
pub async fn status_of(addr: &str) -> anyhow::Result<ClusterStatusResponse> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .connect()
        .await?;
    Ok(ControlServiceClient::new(channel)
        .cluster_status(ClusterStatusRequest {})
        .await?
        .into_inner())
}

/// A minimal valid pipeline named `name` (stored without starting a run).
pub fn tiny_pipeline(name: &str) -> String {
    format!(
        "apiVersion: apitap/v1\nkind: Pipeline\nmetadata: {{ name: {name} }}\nspec:\n  source: {{ http: {{ url: \"http://127.0.0.1:9/v1/all\" }} }}\n  sink: {{ sqlite: {{ path: /tmp/apitap-unused.db, table: t }} }}\n"
    )
}

/// Submits pipelines through whichever node leads.
#[derive(Clone)]
pub struct Submitter {
    client: LeaderClient,
}

impl Submitter {
    pub fn new(addrs: Vec<String>, timeout: Duration) -> Self {
        Self {
            client: LeaderClient::new(addrs, timeout),
        }
    }

    /// Dials over mutual TLS (a TLS cluster's client certificate).
    pub fn with_tls(mut self, tls: Option<apitap_proto::tls::Tls>) -> Self {
        self.client = self.client.with_tls(tls);
        self
    }

    /// Sends `token` with every call (a TLS cluster's operator or admin token).
    pub fn with_token(mut self, token: Option<&str>) -> anyhow::Result<Self> {
        self.client = self.client.with_token(token).map_err(anyhow::Error::msg)?;
        Ok(self)
    }

    /// Stores pipeline `name`; Ok once the cluster acknowledged (committed) it.
    pub async fn submit(&mut self, name: &str) -> anyhow::Result<()> {
        let req = SubmitPipelineRequest {
            spec_yaml: tiny_pipeline(name),
            start_run: false,
            file: format!("{name}.yaml"),
            ..Default::default()
        };
        self.client
            .call(|ch| {
                let req = req.clone();
                async move { ControlServiceClient::new(ch).submit_pipeline(req).await }
            })
            .await?;
        Ok(())
    }

    /// Names of every stored pipeline (a linearizable read on the leader).
    pub async fn pipeline_names(&mut self) -> anyhow::Result<Vec<String>> {
        let resp = self
            .client
            .call(|ch| async move {
                ControlServiceClient::new(ch)
                    .max_decoding_message_size(256 << 20)
                    .list_pipelines(ListPipelinesRequest::default())
                    .await
            })
            .await?;
        Ok(resp.pipelines.into_iter().map(|p| p.name).collect())
    }
}
