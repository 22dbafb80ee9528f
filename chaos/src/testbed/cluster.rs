//! `TestCluster`: coordinators, workers and the mock API, started as real processes (the
//! mock API runs in this process) on 127.0.0.1.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cluster = apitap_chaos::testbed::TestCluster::builder().coordinators(1).workers(2).records(5000).start().await?;
//! let out = cluster.ctl(&["get", "pipelines"])?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::process::Proc;
use super::{bins, free_port, wait};
use crate::mock_api::{self, MockApiConfig, MockApiHandle, OAuthConfig as MockOAuth};

/// Builder methods that set the field of their name to their argument.
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

pub struct ClusterBuilder {
    coordinators: usize,
    workers: usize,
    slots: u32,
    records: u64,
    /// The mock API's OAuth2 client and token lifetime.
    oauth: MockOAuth,
    out_dir: Option<PathBuf>,
    lease_ttl: Duration,
    worker_env: Vec<(String, String)>,
    coordinator_env: Vec<(String, String)>,
    ctl_env: Vec<(String, String)>,
    snapshot_every: Option<u64>,
    /// (listen, advertised) address of each coordinator, when set by [`Self::advertise`].
    advertise: Option<Vec<(String, String)>>,
    tls: bool,
}

impl ClusterBuilder {
    /// An environment variable for apitapctl, i.e. a `${VAR}` secret of submitted pipelines.
    pub fn secret(mut self, key: &str, value: &str) -> Self {
        self.ctl_env.push((key.into(), value.into()));
        self
    }

    setters! {
        coordinators: usize;
        workers: usize;
        slots: u32;
        /// Size of the mock API's dataset.
        records: u64;
        lease_ttl: Duration;
    }
    /// The mock API's OAuth2 tokens live this long (1h by default).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.oauth.token_lifetime = lifetime;
        self
    }
    /// Keep logs and data here instead of a temporary directory.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }
    /// Coordinators build a Raft snapshot after this many applied entries.
    pub fn snapshot_every(mut self, entries: u64) -> Self {
        self.snapshot_every = Some(entries);
        self
    }
    pub fn worker_env(mut self, key: &str, value: &str) -> Self {
        self.worker_env.push((key.into(), value.into()));
        self
    }
    /// Mutual TLS on every gRPC link, with a fresh CA and certificates in the cluster's
    /// folder (`tls/`): coordinators, workers and apitapctl get them through `APITAP_TLS_*`.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }
    /// An environment variable for every coordinator, e.g. `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn coordinator_env(mut self, key: &str, value: &str) -> Self {
        self.coordinator_env.push((key.into(), value.into()));
        self
    }
    /// Coordinator `i` listens on `addrs[i].0` and tells its peers to dial `addrs[i].1`
    /// (`--advertise-addr`, and the address `cluster add` registers), e.g. a fault proxy in
    /// front of it. Workers and apitapctl are still given the listen addresses.
    pub fn advertise(mut self, addrs: Vec<(String, String)>) -> Self {
        self.advertise = Some(addrs);
        self
    }

    pub async fn start(self) -> anyhow::Result<TestCluster> {
        let (tmp, out) = match &self.out_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("apitap-cluster-")
                    .tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mock = mock_api::start(
            MockApiConfig {
                oauth: self.oauth.clone(),
                ..MockApiConfig::with_records(self.records)
            },
            "127.0.0.1:0".parse()?,
        )
        .await?;
        let mut cluster = TestCluster {
            _tmp: tmp,
            out,
            coordinators: Vec::new(),
            workers: Vec::new(),
            mock,
            slots: self.slots,
            lease_ttl: self.lease_ttl,
            worker_env: self.worker_env.clone(),
            coordinator_env: self.coordinator_env.clone(),
            ctl_env: self.ctl_env.clone(),
            snapshot_every: self.snapshot_every,
            certs: None,
        };
        if self.tls {
            // Peers dial the advertised address: a certificate that does not name its host
            // would fail every Raft link, which looks like a partition, not a setup error.
            if let Some(bad) = self.advertise.iter().flatten().find(|(listen, adv)| {
                !super::certs::names_coordinator_host(listen)
                    || !super::certs::names_coordinator_host(adv)
            }) {
                anyhow::bail!(
                    "a TLS test cluster's coordinators are dialled only by {:?}, but one listens on {} and advertises {}",
                    super::certs::COORDINATOR_HOSTS,
                    bad.0,
                    bad.1
                );
            }
            // Coordinators' and workers' certificates are issued as they start.
            let certs = super::certs::generate(&cluster.out.join("tls"))?;
            cluster.ctl_env.extend(certs.client_env());
            // A secure cluster seals its secrets at rest too.
            let key_file = cluster.out.join("tls").join("secrets.key");
            if !key_file.exists() {
                write_secrets_key(&key_file, &[("k1", &random_key())])?;
            }
            cluster.coordinator_env.push((
                "APITAP_SECRETS_KEY_FILE".into(),
                key_file.display().to_string(),
            ));
            cluster.certs = Some(certs);
        }
        for i in 0..self.coordinators {
            let id = i as u64 + 1;
            cluster.coordinators.push(CoordinatorNode {
                id,
                addr: match &self.advertise {
                    Some(a) => a[i].0.clone(),
                    None => format!("127.0.0.1:{}", free_port()),
                },
                advertise: self.advertise.as_ref().map(|a| a[i].1.clone()),
                data_dir: cluster.out.join(format!("coordinator-{id}")),
                proc: None,
                admin: None,
            });
        }
        for i in 0..self.coordinators {
            // A first start may lose its port to another process between choosing and
            // binding; nothing refers to the port yet, so pick another.
            let mut tries = 0;
            loop {
                match cluster.start_coordinator(i) {
                    Err(e)
                        if self.advertise.is_none()
                            && tries < 3
                            && e.to_string().contains("in use") =>
                    {
                        tries += 1;
                        cluster.coordinators[i].addr = format!("127.0.0.1:{}", free_port());
                    }
                    other => break other?,
                }
            }
        }
        if cluster.certs.is_some() {
            let token = cluster.admin_token(Duration::from_secs(30))?;
            cluster.ctl_env.push(("APITAP_TOKEN".into(), token));
        }
        cluster.wait_for_leader(Duration::from_secs(30))?;
        // A cluster started again on its folder (`apitap-chaos up --keep`) has its members
        // already: only the missing ones are added.
        let voters = cluster.voters()?;
        for i in 1..self.coordinators {
            let node = &cluster.coordinators[i];
            let (id, addr) = (node.id, node.advertise.clone().unwrap_or(node.addr.clone()));
            if voters.get(&id) != Some(&addr) {
                cluster.ctl_ok(&["cluster", "add", &id.to_string(), &addr])?;
            }
        }
        for i in 0..self.workers {
            cluster.workers.push(WorkerNode {
                id: format!("worker-{}", i + 1),
                proc: None,
                admin: None,
                failpoints: false,
            });
            cluster.start_worker(i)?;
        }
        cluster.wait_for_workers(self.workers, Duration::from_secs(30))?;
        Ok(cluster)
    }
}

/// 32 random bytes in hex: a secrets key.
pub fn random_key() -> String {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a `--secrets-key-file`: `(id, hex key)` lines, the first one current.
pub fn write_secrets_key(path: &Path, keys: &[(&str, &str)]) -> anyhow::Result<()> {
    let text: String = keys.iter().map(|(id, k)| format!("{id} {k}\n")).collect();
    std::fs::write(path, text)?;
    Ok(())
}

pub struct CoordinatorNode {
    pub id: u64,
    pub addr: String,
    /// The address peers dial, when it is not `addr` (see [`ClusterBuilder::advertise`]).
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    pub proc: Option<Proc>,
    /// Its admin HTTP address (health, metrics), from its first stdout line.
    pub admin: Option<String>,
}

pub struct WorkerNode {
    pub id: String,
    pub proc: Option<Proc>,
    /// Its admin HTTP address (health, metrics), from its first stdout line.
    pub admin: Option<String>,
    /// Its binary has the named fail points (`--features apitap-worker/failpoints`), from its
    /// first stdout line.
    pub failpoints: bool,
}

pub struct TestCluster {
    _tmp: Option<tempfile::TempDir>,
    /// Logs and data of every process.
    pub out: PathBuf,
    pub coordinators: Vec<CoordinatorNode>,
    pub workers: Vec<WorkerNode>,
    pub mock: MockApiHandle,
    slots: u32,
    lease_ttl: Duration,
    worker_env: Vec<(String, String)>,
    coordinator_env: Vec<(String, String)>,
    ctl_env: Vec<(String, String)>,
    snapshot_every: Option<u64>,
    /// The certificates of a TLS cluster.
    pub certs: Option<super::certs::TestCerts>,
}

impl TestCluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            coordinators: 1,
            workers: 1,
            slots: 4,
            records: 1000,
            oauth: MockOAuth::default(),
            out_dir: None,
            lease_ttl: Duration::from_secs(5),
            worker_env: Vec::new(),
            coordinator_env: Vec::new(),
            ctl_env: Vec::new(),
            snapshot_every: None,
            advertise: None,
            tls: false,
        }
    }

    pub fn coordinator_addrs(&self) -> Vec<String> {
        self.coordinators.iter().map(|c| c.addr.clone()).collect()
    }

    pub fn logs(&self) -> PathBuf {
        self.out.join("logs")
    }

    /// (Re)starts coordinator `i` on its data directory and port.
    pub fn start_coordinator(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &self.coordinators[i];
        let mut cmd = Command::new(bins::path("apitap-coordinator")?);
        cmd.arg("--id")
            .arg(node.id.to_string())
            .arg("--grpc-addr")
            .arg(&node.addr)
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--lease-ttl")
            .arg(humantime::format_duration(self.lease_ttl).to_string())
            .arg("--admin-addr")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "info,openraft=warn");
        cmd.envs(self.coordinator_env.iter().map(|(k, v)| (k, v)));
        if let Some(certs) = &self.certs {
            cmd.envs(certs.coordinator_env(node.id)?);
        }
        if node.id == 1 {
            cmd.arg("--init");
        }
        if let Some(a) = &node.advertise {
            cmd.arg("--advertise-addr").arg(a);
        }
        if let Some(n) = self.snapshot_every {
            cmd.arg("--snapshot-every").arg(n.to_string());
        }
        let (proc, ready) = Proc::spawn(
            &format!("coordinator-{}", node.id),
            cmd,
            &self.logs(),
            Duration::from_secs(30),
        )?;
        self.coordinators[i].proc = Some(proc);
        self.coordinators[i].admin = admin_addr(&ready);
        Ok(())
    }

    /// (Re)starts worker `i`.
    pub fn start_worker(&mut self, i: usize) -> anyhow::Result<()> {
        self.start_worker_with_env(i, &[])
    }

    /// (Re)starts worker `i` with `extra` environment variables on top of the cluster's
    /// (for this start only), e.g. `FAILPOINTS`.
    pub fn start_worker_with_env(
        &mut self,
        i: usize,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let id = self.workers[i].id.clone();
        let mut cmd = Command::new(bins::path("apitap-worker")?);
        cmd.arg("--id")
            .arg(&id)
            .arg("--slots")
            .arg(self.slots.to_string())
            .arg("--coordinator")
            .arg(self.coordinator_addrs().join(","))
            .arg("--admin-addr")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "info");
        cmd.envs(self.worker_env.iter().map(|(k, v)| (k, v)));
        if let Some(certs) = &self.certs {
            cmd.envs(certs.worker_env(&id)?);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let (proc, ready) = Proc::spawn(&id, cmd, &self.logs(), Duration::from_secs(30))?;
        self.workers[i].proc = Some(proc);
        self.workers[i].admin = admin_addr(&ready);
        self.workers[i].failpoints = ready["failpoints"] == true;
        Ok(())
    }

    pub fn coordinator_proc(&mut self, i: usize) -> Option<&mut Proc> {
        self.coordinators[i].proc.as_mut()
    }

    pub fn worker_proc(&mut self, i: usize) -> Option<&mut Proc> {
        self.workers[i].proc.as_mut()
    }

    /// Runs apitapctl against this cluster.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.ctl_with(&[], args)
    }

    /// Runs apitapctl with `env` on top of the cluster's (e.g. another `APITAP_TOKEN`, or a
    /// `${VAR}` value for one submit).
    pub fn ctl_with(&self, env: &[(&str, &str)], args: &[&str]) -> anyhow::Result<Output> {
        let out = Command::new(bins::path("apitapctl")?)
            .arg("--coordinator")
            .arg(self.coordinator_addrs().join(","))
            .args(args)
            .env("MOCK_API_URL", self.mock.url())
            .envs(self.ctl_env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .output()?;
        Ok(out)
    }

    /// Runs apitapctl and fails with its output unless it exits 0.
    pub fn ctl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.ctl(args)?;
        if !out.status.success() {
            anyhow::bail!(
                "apitapctl {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// apitapctl with `-o json`, parsed.
    pub fn ctl_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        Ok(serde_json::from_str(&self.ctl_ok(&all)?)?)
    }

    pub fn cluster_status(&self) -> anyhow::Result<serde_json::Value> {
        self.ctl_json(&["--timeout", "2s", "cluster", "status"])
    }

    /// The voters (id → address) in the membership, as a coordinator knows it.
    pub fn voters(&self) -> anyhow::Result<std::collections::BTreeMap<u64, String>> {
        let s = self.cluster_status()?;
        Ok(s["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["voter"] == true)
            .filter_map(|m| Some((m["node_id"].as_u64()?, m["addr"].as_str()?.to_string())))
            .collect())
    }

    /// The first admin token, which the coordinator that initialised the cluster writes
    /// to `admin.token` in its data directory once it leads.
    pub fn admin_token(&self, timeout: Duration) -> anyhow::Result<String> {
        let path = self.coordinators[0].data_dir.join("admin.token");
        wait::until("the first admin token", timeout, || {
            let t = std::fs::read_to_string(&path).ok()?;
            let t = t.trim();
            (!t.is_empty()).then(|| t.to_string())
        })
    }

    /// Writes an apitapctl context file (`APITAP_CONFIG`) named `name` for this cluster: its
    /// coordinators and, for a TLS cluster, the user certificate and the first admin token's
    /// file (the token itself stays in the coordinator's private data directory).
    pub fn write_context(&self, path: &Path, name: &str) -> anyhow::Result<()> {
        let mut ctx = serde_json::json!({
            "name": name,
            "coordinators": self.coordinator_addrs(),
        });
        if let Some(c) = &self.certs {
            ctx["tls-ca"] = c.ca.display().to_string().into();
            ctx["tls-cert"] = c.client_cert.display().to_string().into();
            ctx["tls-key"] = c.client_key.display().to_string().into();
            let token = self.coordinators[0].data_dir.join("admin.token");
            ctx["token-file"] = token.display().to_string().into();
        }
        let file = serde_json::json!({ "current-context": name, "contexts": [ctx] });
        let text = format!(
            "# apitapctl context file: APITAP_CONFIG={} apitapctl get runs\n{}",
            path.display(),
            serde_saphyr::to_string(&file)?
        );
        std::fs::write(path, text)?;
        Ok(())
    }

    /// The token apitapctl calls of this cluster carry (TLS clusters only).
    pub fn token(&self) -> Option<&str> {
        self.ctl_env
            .iter()
            .find(|(k, _)| k == "APITAP_TOKEN")
            .map(|(_, v)| v.as_str())
    }

    pub fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<u64> {
        wait::until("a coordinator leader", timeout, || {
            let s = self.cluster_status().ok()?;
            s["leader_id"].as_u64().filter(|l| *l != 0)
        })
    }

    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        wait::until(&format!("{n} live workers"), timeout, || {
            let s = self.cluster_status().ok()?;
            let live = s["workers"]
                .as_array()?
                .iter()
                .filter(|w| w["live"] == true)
                .count();
            (live >= n).then_some(())
        })
    }

    /// Writes `yaml` to the output folder and submits it; returns the started run id.
    pub fn submit(&self, name: &str, yaml: &str) -> anyhow::Result<u64> {
        let path = self.out.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml)?;
        let v = self.ctl_json(&["submit", &path.display().to_string()])?;
        v["run_id"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no run id in {v}"))
    }

    pub fn run_info(&self, run_id: u64) -> anyhow::Result<serde_json::Value> {
        self.ctl_json(&["describe", "run", &run_id.to_string()])
    }

    /// Waits until the run ends and returns its final description.
    pub fn wait_for_run(
        &self,
        run_id: u64,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        wait::until(&format!("run {run_id} to finish"), timeout, || {
            let r = self.run_info(run_id).ok()?;
            matches!(
                r["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
            .then_some(r)
        })
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.logs().join(format!("{name}.log"))
    }

    pub fn out_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.out.join(rel)
    }
}

/// The `admin` address a node prints in its first stdout line.
fn admin_addr(ready: &serde_json::Value) -> Option<String> {
    ready["admin"].as_str().map(str::to_owned)
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Some(mut p) = w.proc.take() {
                p.kill();
            }
        }
        for c in &mut self.coordinators {
            if let Some(mut p) = c.proc.take() {
                p.kill();
            }
        }
    }
}
