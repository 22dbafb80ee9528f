//! apitapctl: the command-line client of ApiTap Cluster.
//!
//! - `cli`: the clap command tree (what `--help` shows).
//! - `client`: a `ControlService` client that finds the leader and retries.
//! - `context`: the context file (named clusters, like kubeconfig).
//! - `output`: tables, JSON and YAML.
//! - `commands/`: one file per command group.

/// `println!` that ends the process quietly when the reader of stdout went away
/// (`apitapctl get runs | head`), instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output::stdout_failed(e);
        }
    }};
}

/// `print!` with the same handling as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($arg)*) {
            $crate::output::stdout_failed(e);
        }
    }};
}

mod cli;
mod client;
mod commands;
mod context;
mod output;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // SIGPIPE stays ignored (Rust's default): restoring it would let a coordinator that
    // closes a connection mid-write (a TLS handshake it refuses) kill apitapctl without a
    // word. A closed stdout is handled where output is written (`outln!`).
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
        || [
            "transport error",
            "h2 protocol error",
            "handshake",
            "certificate",
        ]
        .iter()
        .any(|m| message.contains(m))
}
