//! `apitap-chaos up` started again on its folder: a second `up` starts a fresh playground
//! (the old cluster's membership is gone with its data), `up --keep` starts the same
//! cluster again with its data and without initializing it again, and a folder that
//! `apitap-chaos` did not write is refused. The playground runs with mutual TLS and tokens;
//! apitapctl reaches it through the context file `up` writes, and without it is refused.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apitap_chaos::testbed::process::Proc;
use apitap_chaos::testbed::{bins, wait};
use serde_json::Value;

/// A running `apitap-chaos up`, and the addresses it printed.
struct Up {
    proc: Proc,
    info: Value,
}

fn up(out: &Path, logs: &Path, extra: &[&str]) -> anyhow::Result<Up> {
    let mut cmd = Command::new(bins::path("apitap-chaos")?);
    cmd.args([
        "up",
        "--coordinators",
        "3",
        "--workers",
        "1",
        "--records",
        "100",
    ])
    .args(["--json", "--out"])
    .arg(out)
    .args(extra);
    let (proc, info) = Proc::spawn("up", cmd, logs, Duration::from_secs(180))?;
    anyhow::ensure!(info["coordinators"].is_array(), "not the JSON line: {info}");
    Ok(Up { proc, info })
}

impl Up {
    fn coordinators(&self) -> Vec<String> {
        self.info["coordinators"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["grpc"].as_str().map(str::to_owned))
            .collect()
    }

    /// apitapctl with the context file `up` wrote: its coordinators, certificate and token.
    fn ctl(&self, args: &[&str]) -> anyhow::Result<Value> {
        let config = self.info["apitapctl_config"].as_str().unwrap_or_default();
        let out = Command::new(bins::path("apitapctl")?)
            .env("APITAP_CONFIG", config)
            .args(["-o", "json"])
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "apitapctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn rate_limit_keys(&self) -> anyhow::Result<Vec<String>> {
        let v = self.ctl(&["ratelimit", "list"])?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["key"].as_str().map(str::to_owned))
            .collect())
    }

    fn voters(&self) -> anyhow::Result<usize> {
        let s = self.ctl(&["cluster", "status"])?;
        Ok(s["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["voter"] == true)
            .count())
    }

    /// Ctrl-C, as a user stops it; it must exit on its own.
    fn stop(mut self) -> anyhow::Result<()> {
        self.proc.signal(libc::SIGINT);
        let status = wait::until("up to exit after Ctrl-C", Duration::from_secs(60), || {
            self.proc.try_wait()
        })?;
        anyhow::ensure!(status.success(), "up exited with {status}");
        Ok(())
    }
}

fn count(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[test]
fn up_starts_again_on_its_folder_fresh_or_kept() -> anyhow::Result<()> {
    let scratch = tempfile_dir("up")?;
    let out = scratch.join("playground");
    let logs = scratch.join("logs");
    let init_log = out.join("logs/coordinator-1.log");

    let first = up(&out, &logs, &[])?;
    let c = &first.info["coordinators"][0];
    assert_eq!(
        c["console"].as_str(),
        c["admin"]
            .as_str()
            .map(|a| format!("{a}/console"))
            .as_deref(),
        "up prints each coordinator's web console: {c}"
    );
    assert_eq!(first.info["tls"], true, "{}", first.info);
    first.ctl(&["ratelimit", "set", "first.example", "--rps", "5"])?;
    // Without the context file's certificate and token: refused.
    let plain = Command::new(bins::path("apitapctl")?)
        .args(["--timeout", "3s", "--coordinator", &first.coordinators()[0]])
        .args(["cluster", "status"])
        .output()?;
    assert!(
        !plain.status.success(),
        "a plaintext client reached a TLS playground"
    );
    first.stop()?;

    // The second start is fresh: nothing of the first cluster is left.
    let second = up(&out, &logs, &[])?;
    assert_eq!(second.voters()?, 3);
    assert_eq!(second.rate_limit_keys()?, Vec::<String>::new());
    second.ctl(&["ratelimit", "set", "second.example", "--rps", "5"])?;
    let addrs = second.coordinators();
    second.stop()?;

    // --keep: the same cluster at the same addresses, its data still there, no new init.
    let kept = up(&out, &logs, &["--keep"])?;
    assert_eq!(kept.coordinators(), addrs);
    assert_eq!(kept.voters()?, 3);
    assert_eq!(kept.rate_limit_keys()?, vec!["second.example".to_string()]);
    assert_eq!(count(&init_log, "initialized a new cluster"), 1);
    kept.stop()?;
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

#[test]
fn up_refuses_a_folder_it_did_not_write() -> anyhow::Result<()> {
    let scratch = tempfile_dir("up-foreign")?;
    std::fs::write(scratch.join("notes.txt"), "mine")?;
    let out = Command::new(bins::path("apitap-chaos")?)
        .args(["up", "--json", "--out"])
        .arg(&scratch)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not written by apitap-chaos"), "{stderr}");
    assert!(scratch.join("notes.txt").exists());
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// A new, empty folder of this test process.
fn tempfile_dir(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("apitap-{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
