//! Direct gRPC access to coordinators for tests, drills and benchmarks: one node's own view
//! (`status_of`, `status_as`), pipeline submits through the leader (`Submitter`), and who
//! an in-process client is on a TLS cluster (`Caller`).

use std::time::Duration;

use apitap_proto::auth::{AuthChannel, Bearer};
use apitap_proto::client::LeaderClient;
use apitap_proto::tls::{host_of, uri, Tls};
use apitap_proto::v1::control_service_client::ControlServiceClient;
use apitap_proto::v1::{
    ClusterStatusRequest, ClusterStatusResponse, ListPipelinesRequest, SubmitPipelineRequest,
};
use tonic::transport::{Channel, Endpoint};

use super::TestCluster;

/// Who an in-process client is: on a TLS cluster, the testbed's user certificate
/// (`apitap://user/testbed`) for the handshake and a bearer token for the role; on a
/// plaintext cluster, nobody (every call is allowed). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    tls: Option<Tls>,
    /// Checked to fit a header when set.
    token: Option<String>,
}

impl Caller {
    /// No certificate, no token: a cluster started without `.tls()`.
    pub fn plain() -> Self {
        Self::default()
    }

    /// The user certificate of `cluster` and `token`; plain when the cluster has no TLS.
    pub fn with_token(cluster: &TestCluster, token: Option<&str>) -> anyhow::Result<Self> {
        let Some(certs) = &cluster.certs else {
            return Ok(Self::plain());
        };
        Bearer::new(token).map_err(anyhow::Error::msg)?;
        Ok(Self {
            tls: Some(certs.client_tls()?),
            token: token.map(str::to_owned),
        })
    }

    /// A caller that may only look (`viewer` of every namespace): a token created now by the
    /// cluster's admin through apitapctl, so that observers of a drill or a test cannot
    /// change what they observe, and prove that a viewer sees everything they need. Plain
    /// when the cluster has no TLS. Blocking (it runs apitapctl).
    pub fn viewer(cluster: &TestCluster, name: &str) -> anyhow::Result<Self> {
        if cluster.certs.is_none() {
            return Ok(Self::plain());
        }
        let created = cluster.ctl_json(&[
            "token",
            "create",
            name,
            "--role",
            "viewer",
            "--namespaces",
            "*",
        ])?;
        let token = created["token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("apitapctl token create printed no token: {created}"))?;
        Self::with_token(cluster, Some(token))
    }

    /// Whether calls go over mutual TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint to `addr` (`host:port`): `https://` with the user certificate, which
    /// expects the server's certificate to name `addr`'s host, or `http://`.
    pub fn endpoint(&self, addr: &str) -> anyhow::Result<Endpoint> {
        let endpoint =
            Endpoint::from_shared(uri(addr, self.tls.is_some()).map_err(anyhow::Error::msg)?)?;
        Ok(match &self.tls {
            Some(tls) => endpoint.tls_config(tls.client(host_of(addr)))?,
            None => endpoint,
        })
    }

    /// The control stub over an endpoint made by [`Self::endpoint`], carrying the token.
    pub fn control(&self, channel: Channel) -> ControlServiceClient<AuthChannel> {
        // The token was checked when the caller was made, so this cannot fail.
        let bearer = Bearer::new(self.token.as_deref()).unwrap_or_default();
        ControlServiceClient::new(AuthChannel::new(channel, bearer))
    }

    /// A client of whichever node leads, as this caller.
    pub fn leader_client(
        &self,
        addrs: Vec<String>,
        timeout: Duration,
    ) -> anyhow::Result<LeaderClient> {
        LeaderClient::new(addrs, timeout)
            .with_tls(self.tls.clone())
            .with_token(self.token.as_deref())
            .map_err(anyhow::Error::msg)
    }
}

/// The status as node `addr` itself sees it (no redirect to the leader), on a plaintext
/// cluster.
pub async fn status_of(addr: &str) -> anyhow::Result<ClusterStatusResponse> {
    status_as(addr, &Caller::plain()).await
}

/// The status as node `addr` itself sees it, asked as `caller`.
pub async fn status_as(addr: &str, caller: &Caller) -> anyhow::Result<ClusterStatusResponse> {
    let channel = caller
        .endpoint(addr)?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2))
        .connect()
        .await?;
    Ok(caller
        .control(channel)
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
