//! Command-line configuration of a worker; every flag has an `APITAP_*` environment variable.

use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "apitap-worker",
    version,
    about = "ApiTap Cluster worker: takes shard leases from the coordinator, fetches, transforms and loads them",
    long_about = None
)]
pub struct Config {
    /// Coordinator gRPC addresses (repeat, or comma-separate in APITAP_COORDINATOR).
    #[arg(
        long = "coordinator",
        short = 'c',
        env = "APITAP_COORDINATOR",
        value_delimiter = ',',
        default_value = "127.0.0.1:7400"
    )]
    pub coordinators: Vec<String>,
    /// Stable id of this worker (default: hostname and process id).
    #[arg(long, env = "APITAP_WORKER_ID")]
    pub id: Option<String>,
    /// How many shards this worker runs at once (1 to MAX_WORKER_SLOTS, 1024).
    #[arg(long, env = "APITAP_WORKER_SLOTS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=apitap_proto::limits::MAX_WORKER_SLOTS as i64))]
    pub slots: u32,
    /// Admin HTTP listen address: /health/live, /health/ready, /metrics. Port 0 picks a free port.
    #[arg(long, env = "APITAP_ADMIN_ADDR", default_value = "127.0.0.1:7402")]
    pub admin_addr: std::net::SocketAddr,
    /// Memory (MiB) DataFusion's operators may reserve for one page's SQL; a page over it
    /// fails with an error naming this flag.
    #[arg(long, env = "APITAP_TRANSFORM_MAX_MEMORY_MIB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub transform_max_memory_mib: u64,
    /// Longest one page's SQL may run before it is cancelled.
    #[arg(long, env = "APITAP_TRANSFORM_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub transform_timeout: Duration,
    /// On SIGTERM, wait this long for the current batches to commit before giving up.
    #[arg(long, env = "APITAP_DRAIN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Fault injection for drills and tests: keep running leases the coordinator revoked,
    /// as a worker cut off from the coordinator would, so that the sink's fence is what
    /// stops it. Only in builds with the `failpoints` feature.
    #[cfg(feature = "failpoints")]
    #[arg(
        long,
        env = "APITAP_FAULT_IGNORE_REVOCATIONS",
        hide = true,
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub fault_ignore_revocations: bool,
    /// More networks no pipeline may fetch from (CIDR, repeat or comma-separate), on top of
    /// the built-in deny-list: link-local 169.254.0.0/16 and fe80::/10, and the cloud
    /// metadata addresses and host names (docs/operations.md "Limits").
    #[arg(
        long = "egress-deny",
        env = "APITAP_EGRESS_DENY",
        value_delimiter = ','
    )]
    pub egress_deny: Vec<ipnet::IpNet>,
    /// Also refuse loopback (127.0.0.0/8, ::1): for workers whose own host serves nothing
    /// a pipeline should read.
    #[arg(long, env = "APITAP_EGRESS_DENY_LOOPBACK")]
    pub egress_deny_loopback: bool,
    /// The folder every SQLite file and local files-sink folder must be inside; relative
    /// paths in specs are resolved against it. Unset: anywhere this worker's user can write
    /// (a pipeline's author then chooses where the worker writes).
    #[arg(long, env = "APITAP_LOCAL_SINK_ROOT")]
    pub local_sink_root: Option<std::path::PathBuf>,
    /// Most connections this worker keeps to one sink database (a PostgreSQL or MySQL URL),
    /// shared by every shard loading into it: a commit waits for a free one. Keep the sum
    /// over your workers below the server's `max_connections`.
    #[arg(long, env = "APITAP_SINK_CONNECTIONS",
          default_value_t = crate::sink::sql::pools::DEFAULT_SINK_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(
              crate::sink::sql::pools::MIN_SINK_CONNECTIONS as i64..=crate::sink::sql::pools::MAX_SINK_CONNECTIONS as i64))]
    pub sink_connections: u32,
    /// Most source records all of this worker's open batches (`spec.batch`) hold together;
    /// past it every shard commits its batch at its next page instead of gathering more.
    /// Bounds the worker's memory when many slots gather large batches at once.
    #[arg(long, env = "APITAP_MAX_BATCHED_RECORDS",
          default_value_t = crate::batch_memory::DEFAULT_MAX_BATCHED_RECORDS,
          value_parser = clap::value_parser!(u64).range(
              crate::batch_memory::MIN_MAX_BATCHED_RECORDS..=crate::batch_memory::MAX_MAX_BATCHED_RECORDS))]
    pub max_batched_records: u64,
    /// Mutual TLS to the coordinators (a client certificate from the cluster's CA).
    #[command(flatten)]
    pub tls: apitap_proto::tls::TlsArgs,
    /// Log format: pretty or json.
    #[arg(long, env = "APITAP_LOG_FORMAT", default_value = "pretty")]
    pub log_format: apitap_common::telemetry::LogFormat,
}

impl Config {
    /// The TLS material, read from the files (none without the flags).
    pub fn tls(&self) -> anyhow::Result<Option<apitap_proto::tls::Tls>> {
        self.tls.load().map_err(anyhow::Error::msg)
    }

    /// Whether revoked leases keep running (fault injection; always false without the
    /// `failpoints` feature).
    pub fn ignore_revocations(&self) -> bool {
        #[cfg(feature = "failpoints")]
        return self.fault_ignore_revocations;
        #[cfg(not(feature = "failpoints"))]
        false
    }

    /// The bounds of every page's transform.
    pub fn transform_limits(&self) -> crate::transform::TransformLimits {
        crate::transform::TransformLimits {
            max_memory_bytes: usize::try_from(self.transform_max_memory_mib << 20)
                .unwrap_or(usize::MAX),
            timeout: self.transform_timeout,
        }
    }

    /// The egress deny-list of this worker's HTTP client and fetchers.
    pub fn egress(&self) -> crate::fetch::Egress {
        crate::fetch::Egress::new(self.egress_deny.clone(), self.egress_deny_loopback)
    }

    pub fn worker_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_flags_extend_the_deny_list() {
        let c = Config::parse_from(["apitap-worker"]);
        assert!(c.egress().check_ip("127.0.0.1".parse().unwrap()).is_ok());
        let c = Config::parse_from([
            "apitap-worker",
            "--egress-deny",
            "10.0.0.0/8,192.168.0.0/16",
            "--egress-deny-loopback",
        ]);
        let egress = c.egress();
        for ip in ["10.1.1.1", "192.168.1.1", "127.0.0.1", "169.254.169.254"] {
            assert!(egress.check_ip(ip.parse().unwrap()).is_err(), "{ip}");
        }
        assert!(Config::try_parse_from(["apitap-worker", "--egress-deny", "nonsense"]).is_err());
    }

    #[test]
    fn the_sink_connection_and_batched_record_bounds_refuse_what_is_outside_them() {
        let c = Config::parse_from(["apitap-worker"]);
        assert_eq!(c.sink_connections, 16);
        assert_eq!(c.max_batched_records, 500_000);
        for (flag, value) in [
            ("--sink-connections", "1"),
            ("--sink-connections", "1001"),
            ("--sink-connections", "-3"),
            ("--sink-connections", "１６"),
            ("--max-batched-records", "0"),
            ("--max-batched-records", "100000001"),
            ("--max-batched-records", "18446744073709551616"),
        ] {
            let arg = format!("{flag}={value}");
            let err = Config::try_parse_from(["apitap-worker", arg.as_str()])
                .expect_err(value)
                .to_string();
            assert!(err.contains(flag), "{flag} {value}: {err}");
        }
        let c = Config::parse_from(["apitap-worker", "--sink-connections", "2"]);
        assert_eq!(c.sink_connections, 2);
    }
}
