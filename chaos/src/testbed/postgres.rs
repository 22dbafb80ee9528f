//! `TempPostgres`: a throwaway PostgreSQL server from the installed `initdb` / `pg_ctl`, in
//! a temporary directory on a free port, stopped on drop. `initdb` refuses to run as root,
//! so as root the server runs as the `postgres` user (or `nobody`) through `runuser`.
//! [`TempPostgres::start_tls`] starts one that accepts TCP connections over TLS only, with a
//! self-signed certificate.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::free_port;

pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    pub port: u16,
    tls: bool,
}

fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(d) = std::env::var("APITAP_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if d.join("initdb").exists() {
            return Ok(d);
        }
    }
    for p in std::env::var("PATH").unwrap_or_default().split(':') {
        if Path::new(p).join("initdb").exists() {
            return Ok(PathBuf::from(p));
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get install postgresql) or set APITAP_PG_BIN"
            )
        })
}

pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

impl TempPostgres {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(false)
    }

    /// A server that refuses TCP connections without TLS (`hostssl` only in `pg_hba.conf`),
    /// with a fresh self-signed certificate for 127.0.0.1; [`url`](Self::url) asks for
    /// `sslmode=require`.
    pub fn start_tls() -> anyhow::Result<Self> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> anyhow::Result<Self> {
        let bin = find_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("apitap-pg-").tempdir()?;
        let run_as = if is_root() {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|u| user_exists(u))
                .ok_or_else(|| anyhow::anyhow!("running as root and neither a postgres nor a nobody user exists for initdb"))?;
            let ok = Command::new("chown")
                .arg("-R")
                .arg(user)
                .arg(dir.path())
                .status()?
                .success();
            anyhow::ensure!(ok, "cannot chown {} to {user}", dir.path().display());
            Some(user.to_string())
        } else {
            None
        };
        let port = free_port();
        let pg = Self {
            dir,
            bin,
            run_as,
            port,
            tls,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let mut opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200",
            pg.dir.path().display()
        );
        if tls {
            pg.write_tls_files()?;
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = pg.dir.path().join("postgres.log").display().to_string();
        pg.run(
            "pg_ctl",
            &[
                "-D", &data, "-o", &opts, "-l", &log, "-w", "-t", "60", "start",
            ],
        )?;
        Ok(pg)
    }

    /// A self-signed certificate and its key in the data directory, and a `pg_hba.conf`
    /// that lets TCP clients in over TLS only.
    fn write_tls_files(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let cert =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
        let data = Path::new(&self.data_dir()).to_path_buf();
        let files = [
            ("server.crt", cert.cert.pem()),
            ("server.key", cert.key_pair.serialize_pem()),
            (
                "pg_hba.conf",
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n".to_string(),
            ),
        ];
        for (name, content) in files {
            let path = data.join(name);
            std::fs::write(&path, content)?;
            // PostgreSQL refuses a key readable by others.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            if let Some(user) = &self.run_as {
                let ok = Command::new("chown")
                    .arg(user)
                    .arg(&path)
                    .status()?
                    .success();
                anyhow::ensure!(ok, "cannot chown {} to {user}", path.display());
            }
        }
        Ok(())
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(self.dir.path());
        let out = cmd
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", exe.display()))?;
        if !out.status.success() {
            anyhow::bail!(
                "{tool} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Connection URL of the `postgres` database as the `postgres` superuser (with
    /// `sslmode=require` for a TLS server).
    pub fn url(&self) -> String {
        let base = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        if self.tls {
            format!("{base}?sslmode=require")
        } else {
            base
        }
    }

    /// The same database without TLS (`sslmode=disable`), which a TLS-only server refuses.
    pub fn url_without_tls(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
