//! Command-line configuration of a coordinator node; every flag has an `APITAP_*`
//! environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Whether calls are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Mutual TLS with identities, tokens and roles.
    Enforced,
    /// No TLS: only on loopback or by an explicit `--insecure`.
    Insecure,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "apitap-coordinator",
    version,
    about = "ApiTap Cluster coordinator: a Raft node that stores pipelines, runs and leases and hands work to workers",
    long_about = None
)]
pub struct Config {
    /// This node's Raft id; stable for the node's life (unique in the cluster).
    #[arg(long, env = "APITAP_NODE_ID", default_value_t = 1)]
    pub id: u64,
    /// gRPC listen address (clients, workers and peers). Port 0 picks a free port.
    #[arg(long, env = "APITAP_GRPC_ADDR", default_value = "127.0.0.1:7400")]
    pub grpc_addr: SocketAddr,
    /// Admin HTTP listen address: /health/live, /health/ready, /metrics, the JSON API under
    /// /api and the web console under /console. Port 0 picks a free port.
    #[arg(long, env = "APITAP_ADMIN_ADDR", default_value = "127.0.0.1:7401")]
    pub admin_addr: SocketAddr,
    /// Address peers and clients use to reach this node (defaults to the bound address).
    #[arg(long, env = "APITAP_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Directory of the RocksDB store (Raft log, vote, state machine, snapshots).
    #[arg(long, env = "APITAP_DATA_DIR", default_value = "./data/coordinator")]
    pub data_dir: PathBuf,
    /// Initialize a new cluster with this node as its only member, if it has no state yet.
    #[arg(long, env = "APITAP_INIT", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub init: bool,
    /// Raft heartbeat interval. It is also openraft's deadline for every append (data or
    /// heartbeat) and leadership check, so it must exceed the round-trip time between
    /// coordinators: the default holds a leader on links up to ~120 ms RTT.
    #[arg(long, env = "APITAP_RAFT_HEARTBEAT", default_value = "150ms", value_parser = humantime::parse_duration)]
    pub raft_heartbeat: Duration,
    /// Election timeout: a voter that hears no leader for a random time between this and
    /// twice this asks the others for a pre-vote, and elects if a majority agrees. It is
    /// also how long a leader and its followers refuse votes after they last heard from
    /// each other. At least twice --raft-heartbeat.
    #[arg(long, env = "APITAP_ELECTION_TIMEOUT", default_value = "400ms", value_parser = humantime::parse_duration)]
    pub election_timeout: Duration,
    /// Longest graceful stop after SIGTERM: a leader first hands leadership to its most
    /// caught-up follower, then the servers and Raft stop; whatever still runs at this
    /// deadline is abandoned and the process exits.
    #[arg(long, env = "APITAP_SHUTDOWN_TIMEOUT", default_value = "4s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// HTTP/2 ping interval on the connections to the other coordinators (kept open and
    /// shared by all Raft calls to a peer, pinged also while idle).
    #[arg(long, env = "APITAP_RAFT_KEEPALIVE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub raft_keepalive: Duration,
    /// A peer connection whose ping is not answered within this is closed and dialed again.
    #[arg(long, env = "APITAP_RAFT_KEEPALIVE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub raft_keepalive_timeout: Duration,
    /// Build a snapshot after this many applied log entries.
    #[arg(long, env = "APITAP_SNAPSHOT_EVERY", default_value_t = 5000)]
    pub snapshot_every: u64,
    /// How often workers heartbeat.
    #[arg(long, env = "APITAP_WORKER_HEARTBEAT", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub worker_heartbeat: Duration,
    /// A lease not renewed by a heartbeat within this time expires.
    #[arg(long, env = "APITAP_LEASE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// Finished runs kept per pipeline; older ones (with their shards) are deleted from the
    /// coordinator's state. The warehouse keeps the data, checkpoints and dead letters.
    #[arg(long, env = "APITAP_KEEP_RUNS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_runs: u64,
    /// A worker without leases not heard from for this long is removed from the cluster's
    /// worker list (it registers again if it comes back).
    #[arg(long, env = "APITAP_FORGET_WORKERS_AFTER", default_value = "1h", value_parser = humantime::parse_duration)]
    pub forget_workers_after: Duration,
    /// Mutual TLS on the gRPC port and to the Raft peers (clients must present a
    /// certificate from the same CA).
    #[command(flatten)]
    pub tls: apitap_proto::tls::TlsArgs,
    /// Most pipelines one namespace may hold; a submit beyond it is refused.
    #[arg(long, env = "APITAP_MAX_PIPELINES_PER_NAMESPACE", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pipelines_per_namespace: u32,
    /// Most shards of one namespace leased at once, over every worker: a namespace at its
    /// quota waits (its shards stay pending) while others' shards are placed.
    #[arg(long, env = "APITAP_MAX_SHARDS_PER_NAMESPACE", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_shards_per_namespace: u32,
    /// Most workers the cluster registers at once (forgotten workers do not count).
    #[arg(long, env = "APITAP_MAX_WORKERS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_workers: u32,
    /// Most rate-limit keys the cluster holds.
    #[arg(long, env = "APITAP_MAX_RATE_LIMIT_KEYS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rate_limit_keys: u32,
    /// Most rate-limit keys the pipelines of one namespace may create.
    #[arg(long, env = "APITAP_MAX_RATE_LIMIT_KEYS_PER_NAMESPACE", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rate_limit_keys_per_namespace: u32,
    /// Key file sealing secret values at rest (one `<id> <64 hex digits>` per line, the
    /// first one current); every coordinator of the cluster needs the same file. Without
    /// it, secret values are stored as submitted. See docs/security.md.
    #[arg(long, env = "APITAP_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// Serve without TLS and without authentication on a non-loopback address. Without
    /// this flag a coordinator without TLS only listens on loopback; see docs/security.md.
    #[arg(long, env = "APITAP_INSECURE", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub insecure: bool,
    /// Most items one HTTP API listing returns (`/api/runs?limit=`); a larger `limit` is
    /// refused with this number in the message.
    #[arg(long, env = "APITAP_HTTP_MAX_LIST", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub http_max_list: u32,
    /// Largest HTTP request body (bytes) the admin server reads: the console's login and
    /// action forms; the JSON API's actions take none.
    #[arg(long, env = "APITAP_HTTP_MAX_BODY", default_value_t = 8_192, value_parser = clap::value_parser!(u32).range(256..=1_048_576))]
    pub http_max_body: u32,
    /// The one origin (scheme://host[:port]) whose web pages may call the HTTP JSON API
    /// with a bearer token (CORS); none by default.
    #[arg(long, env = "APITAP_HTTP_CORS_ORIGIN")]
    pub http_cors_origin: Option<String>,
    /// Leader elections a node remembers for the console's cluster page and `/api/cluster`
    /// (memory only).
    #[arg(long, env = "APITAP_HISTORY_ELECTIONS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub history_elections: u32,
    /// Rate-limit keys whose granted and used rate the leader samples for the last ten
    /// minutes (the first ones by name; memory only).
    #[arg(long, env = "APITAP_HISTORY_RATE_KEYS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub history_rate_keys: u32,
    /// Server-Sent Event streams (live run pages) one node serves at once; more are
    /// refused with 503 and the page falls back to polling.
    #[arg(long, env = "APITAP_HTTP_MAX_STREAMS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub http_max_streams: u32,
    /// Log format: pretty or json.
    #[arg(long, env = "APITAP_LOG_FORMAT", default_value = "pretty")]
    pub log_format: apitap_common::telemetry::LogFormat,
}

impl Config {
    /// Checks the settings that depend on each other.
    pub fn validate(&self) -> anyhow::Result<()> {
        use crate::limits::{MAX_RAFT_TIMING, MAX_SHUTDOWN_TIMEOUT};
        for (flag, value, max) in [
            ("--raft-heartbeat", self.raft_heartbeat, MAX_RAFT_TIMING),
            ("--election-timeout", self.election_timeout, MAX_RAFT_TIMING),
            (
                "--shutdown-timeout",
                self.shutdown_timeout,
                MAX_SHUTDOWN_TIMEOUT,
            ),
        ] {
            anyhow::ensure!(
                value <= max,
                "{flag} ({}) is over its limit of {}; give a shorter duration",
                humantime::format_duration(value),
                humantime::format_duration(max)
            );
        }
        anyhow::ensure!(
            !self.raft_heartbeat.is_zero()
                && self.election_timeout >= self.raft_heartbeat.saturating_mul(2),
            "--election-timeout ({}) must be at least twice --raft-heartbeat ({}), which must \
             not be zero: a follower would give up on a leader between two heartbeats",
            humantime::format_duration(self.election_timeout),
            humantime::format_duration(self.raft_heartbeat)
        );
        anyhow::ensure!(
            self.forget_workers_after > self.lease_ttl,
            "--forget-workers-after ({}) must be longer than --lease-ttl ({}): a worker would be forgotten while its leases are still valid",
            humantime::format_duration(self.forget_workers_after),
            humantime::format_duration(self.lease_ttl)
        );
        crate::http::cors::Cors::new(self.http_cors_origin.as_deref())
            .map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// How calls are authenticated: enforced with TLS; without it only on loopback
    /// listeners or with `--insecure`, otherwise the node refuses to start.
    pub fn auth_mode(&self) -> anyhow::Result<AuthMode> {
        if self.tls()?.is_some() {
            return Ok(AuthMode::Enforced);
        }
        let open: Vec<String> = [self.grpc_addr, self.admin_addr]
            .iter()
            .filter(|a| !a.ip().is_loopback())
            .map(|a| a.to_string())
            .collect();
        anyhow::ensure!(
            open.is_empty() || self.insecure,
            "refusing to serve {} without TLS: anyone who reaches it could run every RPC. \
             Give --tls-ca/--tls-cert/--tls-key (docs/security.md), listen on 127.0.0.1, \
             or pass --insecure to accept the risk",
            open.join(" and ")
        );
        Ok(AuthMode::Insecure)
    }

    /// The envelope keys (none without `--secrets-key-file`).
    pub fn secret_box(&self) -> anyhow::Result<crate::secrets::SecretBox> {
        match &self.secrets_key_file {
            Some(path) => crate::secrets::SecretBox::load(path).map_err(anyhow::Error::msg),
            None => Ok(Default::default()),
        }
    }

    /// The TLS material, read from the files (none without the flags).
    pub fn tls(&self) -> anyhow::Result<Option<apitap_proto::tls::Tls>> {
        self.tls.load().map_err(anyhow::Error::msg)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    fn validate(args: &[&str]) -> Result<(), String> {
        let mut argv = vec!["apitap-coordinator"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn raft_timing_and_the_shutdown_bound_are_checked() {
        assert_eq!(validate(&[]), Ok(()));
        let e = validate(&["--election-timeout", "2h"]).unwrap_err();
        assert!(
            e.contains("--election-timeout (2h) is over its limit of 1m"),
            "{e}"
        );
        let e = validate(&["--raft-heartbeat", "400000000y"]).unwrap_err();
        assert!(e.contains("--raft-heartbeat"), "{e}");
        let e = validate(&["--shutdown-timeout", "1day"]).unwrap_err();
        assert!(
            e.contains("--shutdown-timeout (1day) is over its limit of 10m"),
            "{e}"
        );
        let e = validate(&["--raft-heartbeat", "300ms"]).unwrap_err();
        assert!(e.contains("at least twice --raft-heartbeat"), "{e}");
        let e = validate(&["--raft-heartbeat", "0s"]).unwrap_err();
        assert!(e.contains("must not be zero"), "{e}");
    }

    #[test]
    fn http_limits_have_defaults_and_bounds() {
        let c = Config::try_parse_from(["apitap-coordinator"]).unwrap();
        assert_eq!((c.http_max_list, c.http_max_body), (1_000, 8_192));
        assert_eq!(
            (c.history_elections, c.history_rate_keys, c.http_max_streams),
            (20, 100, 64)
        );
        for knob in [
            "--history-elections",
            "--history-rate-keys",
            "--http-max-streams",
        ] {
            assert!(validate(&[knob, "0"]).is_err(), "{knob} 0");
            assert!(validate(&[knob, "10001"]).is_err(), "{knob} 10001");
        }
        assert!(validate(&["--http-max-list", "0"]).is_err());
        assert!(validate(&["--http-max-body", "100"]).is_err());
        assert_eq!(
            validate(&["--http-max-list", "50", "--http-max-body", "4096"]),
            Ok(())
        );
    }
}
