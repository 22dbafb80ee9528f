use apitap_common::shutdown::Shutdown;
use apitap_coordinator::config::Config;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let mut telemetry = apitap_common::telemetry::init(
        config.log_format,
        "info,openraft=warn",
        &format!("coordinator-{}", config.id),
    );
    let shutdown = Shutdown::new();
    shutdown.trigger_on_os_signal();
    let result = apitap_coordinator::server::run(config, shutdown.signal(), &telemetry).await;
    telemetry.shutdown();
    result
}
