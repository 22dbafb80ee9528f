//! `apitap-mock-api`: runs the deterministic mock REST API of ApiTap Cluster
//! as a standalone process, for the demo, manual testing and chaos drills.

use std::{
    io::{IsTerminal, Write},
    net::SocketAddr,
};

use apitap_chaos::mock_api::{start, MockApiConfig};
use clap::Parser;

/// Deterministic mock REST API serving generated records through six
/// pagination styles, with run-time fault injection.
///
/// Endpoints (all GET, all accept `from_id`/`to_id`):
///   /v1/limit_offset?offset=&limit=     /v1/page_number?page=&per_page=
///   /v1/cursor?cursor=&limit=           /v1/next_url?after=&limit=
///   /v1/link_header?page=&per_page=     /v1/all
/// OAuth2: POST /oauth/token (client credentials); the same endpoints under /oauth/v1
/// for its tokens only.
///
/// Admin: POST|GET|DELETE /_admin/faults, POST /_admin/grow, POST /_admin/oauth/revoke,
/// GET /_admin/requests, /_admin/stats, /_admin/health.
///
/// On start, prints one line to stdout:
/// {"event":"listening","url":"http://127.0.0.1:PORT"}
/// Request logs go to stderr (filter with RUST_LOG).
#[derive(Debug, Parser)]
#[command(name = "apitap-mock-api", version, verbatim_doc_comment)]
struct Args {
    /// Number of records served initially (ids 1..=N).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    records: u64,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    bind: SocketAddr,

    /// Require `Authorization: Bearer TOKEN` on /v1 requests.
    #[arg(long, value_name = "TOKEN")]
    bearer_token: Option<String>,

    /// Require header `X-Api-Key: KEY` (or query `api_key=KEY`) on /v1 requests.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,

    /// Require HTTP Basic auth with these credentials on /v1 requests.
    #[arg(long, value_name = "USER:PASS", value_parser = parse_basic)]
    basic: Option<(String, String)>,

    /// The one client of POST /oauth/token (client credentials grant).
    #[arg(long, value_name = "ID:SECRET", value_parser = parse_basic,
          default_value = "apitap-client:apitap-client-secret")]
    oauth_client: (String, String),

    /// Lifetime of the tokens /oauth/token issues (`expires_in`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1h")]
    token_lifetime: std::time::Duration,
}

/// Splits `USER:PASS` at the first colon (passwords may contain colons).
fn parse_basic(raw: &str) -> Result<(String, String), String> {
    raw.split_once(':')
        .map(|(user, pass)| (user.to_owned(), pass.to_owned()))
        .ok_or_else(|| "expected USER:PASS".to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let config = MockApiConfig {
        records: args.records,
        bearer_token: args.bearer_token,
        api_key: args.api_key,
        basic: args.basic,
        oauth: apitap_chaos::mock_api::OAuthConfig {
            client_id: args.oauth_client.0,
            client_secret: args.oauth_client.1,
            token_lifetime: args.token_lifetime,
        },
    };
    // Installed before the ready line, so that an early SIGTERM stops the server cleanly.
    let shutdown = shutdown_signal()?;
    let api = start(config, args.bind).await?;

    let line = serde_json::json!({"event": "listening", "url": api.url()});
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);

    shutdown.await?;
    tracing::info!("shutting down");
    api.stop().await;
    Ok(())
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM. The SIGTERM handler is installed by this call,
/// not when the future is first polled.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                res = tokio::signal::ctrl_c() => res,
                _ = term.recv() => Ok(()),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(tokio::signal::ctrl_c())
    }
}
