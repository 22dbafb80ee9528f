//! What the benchmarks share: how they reach a coordinator's `ControlService` (submit a
//! pipeline, read a run) and how they round their figures.

use std::time::Duration;

use apitap_proto::auth::{AuthChannel, Bearer};
use apitap_proto::tls::Tls;
use apitap_proto::v1::control_service_client::ControlServiceClient;
use apitap_proto::v1::{GetRunRequest, RunInfo, SubmitPipelineRequest};
use tonic::transport::{Channel, Endpoint};

/// The build profile the figures were measured with (a debug build is much slower).
pub(crate) const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// `d` in milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `x` rounded to one decimal.
pub(crate) fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A channel to `addr`, over mutual TLS with `tls` when given.
pub(crate) async fn channel_with(addr: &str, tls: Option<&Tls>) -> anyhow::Result<Channel> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.client(apitap_proto::tls::host_of(addr)))?;
    }
    Ok(endpoint.connect().await?)
}

pub(crate) type Control = ControlServiceClient<AuthChannel>;

/// The control stub of a cluster without TLS or tokens.
pub(crate) async fn control(addr: &str) -> anyhow::Result<Control> {
    control_as(addr, None, None).await
}

/// The control stub with the cluster's user certificate and token, when it has them.
pub(crate) async fn control_as(
    addr: &str,
    tls: Option<&Tls>,
    token: Option<&str>,
) -> anyhow::Result<Control> {
    let bearer = Bearer::new(token).map_err(anyhow::Error::msg)?;
    Ok(
        ControlServiceClient::new(AuthChannel::new(channel_with(addr, tls).await?, bearer))
            .max_decoding_message_size(256 << 20),
    )
}

pub(crate) async fn get_run(c: &mut Control, run_id: u64) -> anyhow::Result<RunInfo> {
    Ok(c.get_run(GetRunRequest { run_id }).await?.into_inner())
}

/// Submits `yaml` (no `${VAR}` secrets) and starts a run; returns its id.
pub(crate) async fn submit(c: &mut Control, name: &str, yaml: String) -> anyhow::Result<u64> {
    let resp = c
        .submit_pipeline(SubmitPipelineRequest {
            spec_yaml: yaml,
            start_run: true,
            file: format!("{name}.yaml"),
            ..Default::default()
        })
        .await?
        .into_inner();
    anyhow::ensure!(resp.run_id != 0, "submitting {name} started no run");
    Ok(resp.run_id)
}
