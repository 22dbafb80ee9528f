//! The command tree.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "apitapctl",
    version,
    about = "Submit and watch ApiTap Cluster pipelines: HTTP APIs → SQL → your warehouse",
    after_help = "Examples:\n  apitapctl submit examples/pipelines/demo.yaml --watch\n  apitapctl get runs\n  apitapctl -n team-a get pipelines\n  apitapctl -A get runs\n  apitapctl watch 3\n  apitapctl -o json describe pipeline demo\n  apitapctl --coordinator 10.0.0.1:7400 --coordinator 10.0.0.2:7400 cluster status"
)]
pub struct Cli {
    /// Coordinator gRPC address; repeat it for several nodes (the leader is found). Also a
    /// comma-separated list in APITAP_COORDINATOR. Default: the context's, else
    /// 127.0.0.1:7400.
    #[arg(
        long = "coordinator",
        short = 'c',
        global = true,
        env = "APITAP_COORDINATOR",
        value_delimiter = ','
    )]
    pub coordinators: Vec<String>,
    /// The context file (like kubeconfig): named clusters with their coordinators, TLS
    /// files, token file and namespace. Default: ~/.config/apitap/config.yaml if it exists.
    #[arg(long, global = true, env = "APITAP_CONFIG")]
    pub config: Option<PathBuf>,
    /// The context of the context file to use (default: its current-context).
    #[arg(long, global = true, env = "APITAP_CONTEXT")]
    pub context: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Give up on an unreachable cluster after this long.
    #[arg(long, global = true, default_value = "15s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// For a cluster with mutual TLS: your client certificate from its CA.
    #[command(flatten)]
    pub tls: apitap_proto::tls::TlsArgs,
    /// Your API token (its role and namespaces decide what you may do). Prefer
    /// APITAP_TOKEN or --token-file: a flag shows in the process list.
    #[arg(long, global = true, env = "APITAP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the API token from this file (e.g. the admin.token `cluster init` wrote).
    #[arg(
        long,
        global = true,
        env = "APITAP_TOKEN_FILE",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,
    /// The namespace of the pipelines you name or list (like kubectl's -n; default:
    /// `default`); also APITAP_NAMESPACE. A pipeline is identified by its namespace and
    /// name. `submit` checks it against the file's metadata.namespace.
    #[arg(long, short = 'n', global = true, env = "APITAP_NAMESPACE")]
    pub namespace: Option<String>,
    /// `get pipelines` / `get runs`: every namespace you may see, not only --namespace.
    #[arg(long, short = 'A', global = true)]
    pub all_namespaces: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a pipeline file and send it to the cluster (starts a run unless it has a
    /// schedule or --no-run is given).
    Submit {
        file: PathBuf,
        /// Store the pipeline without starting a run.
        #[arg(long)]
        no_run: bool,
        /// Watch the started run until it ends.
        #[arg(long, short = 'w')]
        watch: bool,
    },
    /// Check a pipeline file locally, without contacting the cluster.
    Validate { file: PathBuf },
    /// List pipelines or runs.
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Show one pipeline or run in detail.
    Describe {
        #[command(subcommand)]
        what: DescribeWhat,
    },
    /// Start a run of a pipeline now (`run NAME`), or cancel or retry a run.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Run {
        /// The pipeline to run.
        #[arg(required = true)]
        pipeline: Option<String>,
        /// Watch the run until it ends.
        #[arg(long, short = 'w')]
        watch: bool,
        #[command(subcommand)]
        action: Option<RunAction>,
    },
    /// Follow a run live: shards, pages and records, until it ends. Exits non-zero if the
    /// run fails or is cancelled.
    Watch { run_id: u64 },
    /// Delete a pipeline (its active runs are cancelled; loaded data stays in the sink).
    Delete { pipeline: String },
    /// Global rate limits shared by every worker and pipeline calling the same key.
    Ratelimit {
        #[command(subcommand)]
        what: RatelimitWhat,
    },
    /// Inspect and change the coordinator cluster.
    Cluster {
        #[command(subcommand)]
        what: ClusterWhat,
    },
    /// API tokens: create, list, revoke (admin).
    Token {
        #[command(subcommand)]
        what: TokenWhat,
    },
    /// Secret values at rest (admin).
    Secrets {
        #[command(subcommand)]
        what: SecretsWhat,
    },
    /// The context file: show the settings in effect, list or switch contexts.
    Config {
        #[command(subcommand)]
        what: ConfigWhat,
    },
    /// Control changes: who did what, when, and what came of it (admin).
    Audit {
        /// Only changes this recent, e.g. 1h or 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// The newest this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigWhat {
    /// The settings in effect (after flags, environment and context) and where each came
    /// from; never a token.
    View,
    /// The contexts of the context file; `*` marks the current one.
    GetContexts,
    /// Make NAME the context file's current context.
    UseContext { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SecretsWhat {
    /// Seal every stored secret value again under the first key of the coordinators'
    /// --secrets-key-file (after adding a new key there on every node); then the old key
    /// can be removed.
    RotateKey,
}

#[derive(Debug, Subcommand)]
pub enum TokenWhat {
    /// Create a token; its secret is printed once and never stored.
    Create {
        /// What it is for, e.g. ci-orders.
        name: String,
        /// viewer (read), operator (also submit, run, cancel, retry, delete, rate limits),
        /// admin (also membership and tokens, every namespace).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// The namespaces it may touch, comma-separated or repeated; `*` for all.
        #[arg(long = "namespaces", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// It stops working after this long, e.g. 30d (default: never).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// Tokens with their role, namespaces and expiry (never their secrets).
    List,
    /// Revoke a token by its id; calls with it are refused from then on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum RunAction {
    /// Cancel an active run: its shards stop and their leases are revoked.
    Cancel { run_id: u64 },
    /// Run the failed or cancelled shards of a finished run again, from their checkpoints.
    Retry {
        run_id: u64,
        /// Watch the run until it ends.
        #[arg(long, short = 'w')]
        watch: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RatelimitWhat {
    /// Set the limit of a key (usually the API host); replicated through Raft.
    Set {
        key: String,
        /// Requests per second, for the whole fleet together.
        #[arg(long)]
        rps: f64,
        /// Requests that may go out at once above the rate.
        #[arg(long, default_value_t = 1)]
        burst: u32,
    },
    /// Limits with what is granted, used and backed off now.
    List,
    /// Remove a key: pipelines naming it run without a global limit until it is set again.
    Delete { key: String },
    /// End a key's back-off now (an upstream's Retry-After you no longer want to honour).
    ClearBackoff { key: String },
}

#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// All pipelines with their last run.
    Pipelines,
    /// Recent runs, newest first.
    Runs {
        /// Only runs of this pipeline.
        #[arg(long, short = 'p')]
        pipeline: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Registered workers: liveness, draining, leases and slots, last heartbeat.
    Workers,
}

#[derive(Debug, Subcommand)]
pub enum DescribeWhat {
    /// A pipeline and its stored spec.
    Pipeline { name: String },
    /// A run and its shards.
    Run { run_id: u64 },
}

#[derive(Debug, Subcommand)]
pub enum ClusterWhat {
    /// Members, roles, term, log and applied indexes, leader, workers.
    Status,
    /// Make the contacted node the first member of a new cluster.
    Init,
    /// Add a coordinator node (learner first, then voter). A node that already is a member
    /// at the same address is left as it is (exit 0), so running it again is safe.
    Add {
        node_id: u64,
        addr: String,
        /// Keep it a learner.
        #[arg(long)]
        learner: bool,
        /// While an earlier membership change is still being committed, wait this long for
        /// it before giving up.
        #[arg(long, default_value = DEFAULT_MEMBERSHIP_WAIT, value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Remove a coordinator node (a voter or a learner). A node that is not a member is
    /// reported as such (exit 0).
    Remove {
        node_id: u64,
        /// While an earlier membership change is still being committed, wait this long for
        /// it before giving up.
        #[arg(long, default_value = DEFAULT_MEMBERSHIP_WAIT, value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
}

/// How long `cluster add|remove` wait for an earlier membership change to commit (`--wait`).
/// Raft changes membership one step at a time; a step commits within a few heartbeats while
/// a quorum of the nodes it involves is up.
pub const DEFAULT_MEMBERSHIP_WAIT: &str = "60s";
