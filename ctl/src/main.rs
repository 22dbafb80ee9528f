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
                Some(status) => eprintln!("error: {}", status.message()),
                None => eprintln!("error: {e:#}"),
            }
            1
        }
    };
    std::process::exit(code);
}
