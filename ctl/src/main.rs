//! apitapctl: the command-line client of ApiTap Cluster.
//!
//! - `cli`: the clap command tree (what `--help` shows).
//! - `client`: a `ControlService` client that finds the leader and retries.
//! - `output`: tables, JSON and YAML.
//! - `commands/`: one file per command group.

mod cli;
mod client;
mod commands;
mod output;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Die quietly on a closed pipe (`apitapctl get runs | head`) instead of panicking.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    let code = match commands::dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                Some(status) => {
                    eprintln!("error: {}", status.message());
                    if is_connection_failure(status) {
                        eprintln!(
                            "hint: check --coordinator (APITAP_COORDINATOR); a cluster with TLS also needs --tls-ca, --tls-cert and --tls-key"
                        );
                    }
                }
                None => eprintln!("error: {e:#}"),
            }
            1
        }
    };
    std::process::exit(code);
}

/// Whether `status` says the cluster could not be reached or spoken to (as opposed to an
/// answer from it): no coordinator up, a wrong address, or a TLS mismatch.
fn is_connection_failure(status: &tonic::Status) -> bool {
    let message = status.message().to_ascii_lowercase();
    status.code() == tonic::Code::Unavailable
        || ["transport error", "h2 protocol error", "tls", "certificate"]
            .iter()
            .any(|m| message.contains(m))
}
