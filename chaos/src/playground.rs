//! `apitap-chaos up`: a local playground (coordinators, workers, the mock API and a throwaway
//! PostgreSQL) that runs until Ctrl-C.
//!
//! Each `up` starts a fresh cluster in its folder, which is emptied first (and refused if it
//! holds files `apitap-chaos` did not write, see [`out_dir`]). `keep` starts the cluster of
//! the last `up` on that folder again instead: on its coordinators' data, at the same
//! addresses (Raft's membership stores them), without initializing or adding members again.
//! PostgreSQL and the mock API are new each time.
//!
//! The playground runs as production should: mutual TLS with a certificate per node, API
//! tokens and sealed secrets (`insecure` turns all three off). It writes an apitapctl
//! context file (`apitapctl.yaml`) so that `APITAP_CONFIG=... apitapctl ...` just works.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::testbed::{out_dir, TempPostgres, TestCluster};

/// What a later `up --keep` needs to start the same cluster: the coordinators' addresses.
const STATE: &str = "playground.json";

/// The apitapctl context file the playground writes into its folder.
pub const CONTEXT_FILE: &str = "apitapctl.yaml";

pub struct UpOptions {
    pub coordinators: usize,
    pub workers: usize,
    pub records: u64,
    pub out: PathBuf,
    /// Start the playground that `out` holds again instead of a fresh one.
    pub keep: bool,
    /// Plaintext, no tokens, secrets unsealed (loopback only).
    pub insecure: bool,
}

pub struct Playground {
    pub cluster: TestCluster,
    pub pg: TempPostgres,
}

pub async fn start(opts: &UpOptions) -> anyhow::Result<Playground> {
    let kept = if opts.keep { kept(opts)? } else { None };
    let out = match &kept {
        Some(_) => std::fs::canonicalize(&opts.out)?,
        None => out_dir::fresh(&opts.out, "up")?,
    };
    let pg = tokio::task::block_in_place(TempPostgres::start)
        .map_err(|e| anyhow::anyhow!("cannot start PostgreSQL: {e:#}"))?;
    let mut builder = TestCluster::builder()
        .coordinators(opts.coordinators)
        .workers(opts.workers)
        .records(opts.records)
        .out_dir(&out)
        .secret("WAREHOUSE_URL", &pg.url());
    if !opts.insecure {
        builder = builder.tls();
    }
    if let Some(addrs) = &kept {
        builder = builder.advertise(addrs.iter().map(|a| (a.clone(), a.clone())).collect());
    }
    let cluster = builder.start().await.with_context(|| match &kept {
        Some(addrs) => format!(
            "cannot start the playground in {} again: its coordinators need their addresses \
             back ({}), as the Raft membership stores them. If another process holds one of \
             those ports, stop it, or start a fresh playground without --keep",
            out.display(),
            addrs.join(", ")
        ),
        None => format!("cannot start a playground in {}", out.display()),
    })?;
    let state = serde_json::json!({ "coordinators": cluster.coordinator_addrs() });
    std::fs::write(out.join(STATE), serde_json::to_string_pretty(&state)?)?;
    cluster.write_context(&out.join(CONTEXT_FILE), "playground")?;
    Ok(Playground { cluster, pg })
}

/// The coordinators' addresses of the playground `opts.out` holds, or `None` (with a note)
/// when it holds none, so that a fresh one starts.
fn kept(opts: &UpOptions) -> anyhow::Result<Option<Vec<String>>> {
    let dir = &opts.out;
    let state = dir.join(STATE);
    if !state.exists() {
        eprintln!(
            "{} holds no playground to keep; starting a fresh one",
            dir.display()
        );
        return Ok(None);
    }
    if !out_dir::is_ours(dir) {
        anyhow::bail!(
            "{} was not written by apitap-chaos; choose another --out",
            dir.display()
        );
    }
    let addrs = read_state(&state)?;
    if addrs.len() != opts.coordinators {
        anyhow::bail!(
            "{} holds a playground of {} coordinators; start it with --coordinators {}, or \
             without --keep for a fresh one",
            dir.display(),
            addrs.len(),
            addrs.len()
        );
    }
    Ok(Some(addrs))
}

fn read_state(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the JSON `up` writes", path.display()))?;
    v["coordinators"]
        .as_array()
        .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
        .with_context(|| format!("{} lists no coordinator addresses", path.display()))
}

impl Playground {
    /// The apitapctl context file of this playground.
    pub fn context_file(&self) -> PathBuf {
        self.cluster.out_path(CONTEXT_FILE)
    }

    /// Every address of the playground, as `up --json` prints it.
    pub fn info(&self) -> serde_json::Value {
        let http = |addr: &Option<String>| -> serde_json::Value {
            match addr {
                Some(a) => format!("http://{a}").into(),
                None => serde_json::Value::Null,
            }
        };
        let coordinators: Vec<serde_json::Value> = self
            .cluster
            .coordinators
            .iter()
            .map(|c| {
                let console = http(&c.admin)
                    .as_str()
                    .map(|a| serde_json::Value::from(format!("{a}/console")))
                    .unwrap_or_default();
                serde_json::json!({"id": c.id, "grpc": c.addr, "admin": http(&c.admin), "console": console})
            })
            .collect();
        let workers: Vec<serde_json::Value> = self
            .cluster
            .workers
            .iter()
            .map(|w| serde_json::json!({"id": w.id, "admin": http(&w.admin)}))
            .collect();
        serde_json::json!({
            "coordinators": coordinators,
            "workers": workers,
            "mock_api": self.cluster.mock.url(),
            "postgres": self.pg.url(),
            "logs": self.cluster.logs(),
            "apitapctl_config": self.context_file().display().to_string(),
            "tls": self.cluster.certs.is_some(),
        })
    }

    /// The same addresses as a readable list, with a command to try.
    pub fn text(&self) -> String {
        let info = self.info();
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
        let mut out = String::new();
        for c in info["coordinators"].as_array().into_iter().flatten() {
            out += &format!(
                "coordinator-{}: gRPC {}  admin {}  console {}\n",
                c["id"],
                s(&c["grpc"]),
                s(&c["admin"]),
                s(&c["console"])
            );
        }
        for w in info["workers"].as_array().into_iter().flatten() {
            out += &format!("{}: admin {}\n", s(&w["id"]), s(&w["admin"]));
        }
        out += &format!("mock API:   {}\n", s(&info["mock_api"]));
        out += &format!("PostgreSQL: {}\n", s(&info["postgres"]));
        out += &format!("logs:       {}\n", s(&info["logs"]));
        out += &format!(
            "security:   {}\n",
            if self.cluster.certs.is_some() {
                format!(
                    "mutual TLS, API tokens (apitapctl and the console's sign-in use the first \
                     admin token, {}), sealed secrets",
                    self.cluster.coordinators[0]
                        .data_dir
                        .join("admin.token")
                        .display()
                )
            } else {
                "none (--insecure)".to_string()
            }
        );
        out += &format!(
            "try: export APITAP_CONFIG={}\n     MOCK_API_URL={} WAREHOUSE_URL={} apitapctl submit examples/pipelines/demo.yaml --watch\n",
            self.context_file().display(),
            self.cluster.mock.url(),
            self.pg.url()
        );
        out += "Ctrl-C stops everything\n";
        out
    }
}
