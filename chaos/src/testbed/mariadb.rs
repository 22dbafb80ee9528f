//! `TempMariadb`: a throwaway MariaDB server from the installed `mariadb-install-db` and
//! `mariadbd`, in a temporary directory on a free port, with an empty database `apitap`,
//! killed on drop. As root, the server runs as the `mysql` user (`--user`), as the
//! packaged server does.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::postgres::is_root;
use super::process::KillOnDrop;
use super::{free_port, wait};

pub struct TempMariadb {
    dir: tempfile::TempDir,
    server: KillOnDrop,
    pub port: u16,
}

/// The first of `names` found in `APITAP_MARIADB_BIN`, `PATH` or `/usr/sbin`.
fn find(names: &[&str]) -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var("APITAP_MARIADB_BIN")
        .into_iter()
        .map(PathBuf::from)
        .collect();
    dirs.extend(std::env::split_paths(
        &std::env::var("PATH").unwrap_or_default(),
    ));
    dirs.push(PathBuf::from("/usr/sbin"));
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} not found; install the MariaDB server (Debian: apt-get install mariadb-server, or scripts/prereqs.sh) or set APITAP_MARIADB_BIN",
                names[0]
            )
        })
}

impl TempMariadb {
    pub fn start() -> anyhow::Result<Self> {
        let install = find(&["mariadb-install-db", "mysql_install_db"])?;
        let mariadbd = find(&["mariadbd", "mysqld"])?;
        let dir = tempfile::Builder::new()
            .prefix("apitap-mariadb-")
            .tempdir()?;
        let path = dir.path();
        // A temporary directory of its own: servers bootstrapping at once in a shared
        // /tmp collide on their temporary tables.
        std::fs::create_dir(path.join("tmp"))?;
        let tmp = format!("--tmpdir={}", path.join("tmp").display());
        let user: &[&str] = if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "mysql"])
                .arg(path)
                .status()?
                .success();
            anyhow::ensure!(ok, "cannot chown {} to mysql", path.display());
            &["--user=mysql"]
        } else {
            &[]
        };
        let data = format!("--datadir={}", path.join("data").display());
        let out = Command::new(&install)
            .args([
                "--no-defaults",
                &data,
                &tmp,
                "--auth-root-authentication-method=normal",
            ])
            .args(["--skip-test-db"])
            .args(user)
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", install.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "{} failed ({}):\n{}{}",
            install.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let init = path.join("init.sql");
        std::fs::write(&init, "CREATE DATABASE IF NOT EXISTS apitap;\n")?;
        let port = free_port();
        let file = |name: &str| path.join(name).display().to_string();
        let server = KillOnDrop::spawn_quiet(
            Command::new(&mariadbd)
                .args(["--no-defaults", &data, &tmp])
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--socket={}", file("mysqld.sock")))
                .arg(format!("--pid-file={}", file("mysqld.pid")))
                .arg(format!("--log-error={}", file("error.log")))
                .arg(format!("--init-file={}", init.display()))
                // Durability is not what a throwaway server is for.
                .args(["--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"])
                .args(["--innodb-buffer-pool-size=32M", "--skip-name-resolve"])
                .args(user),
        )?;
        let mut db = Self { dir, server, port };
        db.wait_ready()?;
        Ok(db)
    }

    /// Until the server accepts TCP connections (it runs the init file first), or has
    /// exited (then with its error log).
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let log = self.dir.path().join("error.log");
        wait::listening(
            "mariadbd",
            &mut self.server.0,
            self.port,
            Duration::from_secs(60),
            Some(&log),
            || true,
        )
    }

    /// Connection URL of the `apitap` database as `root` (no password).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/apitap", self.port)
    }
}
