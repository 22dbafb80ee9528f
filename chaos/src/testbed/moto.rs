//! `TempS3`: a throwaway S3-compatible server (`moto_server`, from PyPI's `moto[server]`,
//! installed by scripts/prereqs.sh) on a free loopback port, with one empty bucket, killed
//! on drop. It takes any access key; its state lives in memory.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::process::KillOnDrop;
use super::{free_port, wait};

/// Where scripts/prereqs.sh installs moto when it is not on `PATH`.
pub const MOTO_VENV_BIN: &str = "/opt/apitap/moto/bin";

pub struct TempS3 {
    server: KillOnDrop,
    pub port: u16,
    pub bucket: String,
}

/// `moto_server` from `APITAP_MOTO_SERVER`, `PATH` or [`MOTO_VENV_BIN`].
fn find() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("APITAP_MOTO_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var("PATH").unwrap_or_default()).collect();
    dirs.push(PathBuf::from(MOTO_VENV_BIN));
    dirs.iter()
        .map(|d| d.join("moto_server"))
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "moto_server not found; run scripts/prereqs.sh (it installs moto[server] into \
                 {MOTO_VENV_BIN}) or set APITAP_MOTO_SERVER"
            )
        })
}

impl TempS3 {
    /// Starts the server and creates the bucket `bucket`.
    pub async fn start(bucket: &str) -> anyhow::Result<Self> {
        let bin = find()?;
        let port = free_port();
        let server = KillOnDrop::spawn_quiet(Command::new(&bin).args([
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]))?;
        let mut s3 = Self {
            server,
            port,
            bucket: bucket.to_string(),
        };
        wait::listening(
            "moto_server",
            &mut s3.server.0,
            port,
            Duration::from_secs(60),
            None,
            || true,
        )?;
        let created = reqwest::Client::new()
            .put(format!("{}/{bucket}", s3.endpoint()))
            .send()
            .await?;
        anyhow::ensure!(
            created.status().is_success(),
            "creating the bucket {bucket}: {}",
            created.status()
        );
        Ok(s3)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
