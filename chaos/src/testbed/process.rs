//! A child process of the testbed: stderr and stdout go to a log file in the output
//! folder, the first stdout line (the process's JSON "ready" line) is handed back, and the
//! process is killed when dropped.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd`, waits up to `ready_timeout` for its first stdout line, and returns it
    /// parsed as JSON.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log_dir: &Path,
        ready_timeout: Duration,
    ) -> anyhow::Result<(Self, serde_json::Value)> {
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("{name}.log"));
        let stderr = File::options().create(true).append(true).open(&log)?;
        let mut stdout_log = stderr.try_clone()?;
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = true;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if first {
                    let _ = tx.send(line.clone());
                    first = false;
                }
                let _ = writeln!(stdout_log, "{line}");
            }
        });
        let mut proc = Proc {
            name: name.to_string(),
            child,
            log: log.clone(),
        };
        match rx.recv_timeout(ready_timeout) {
            Ok(line) => {
                let v = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
                Ok((proc, v))
            }
            Err(_) => {
                let status = proc.child.try_wait().ok().flatten();
                proc.kill();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                // The error line first: a backtrace after it would push it out of the tail.
                let error = text
                    .lines()
                    .rfind(|l| l.starts_with("Error:"))
                    .unwrap_or_default();
                let mut tail: Vec<&str> = text.lines().rev().take(20).collect();
                tail.push(error);
                anyhow::bail!(
                    "{name} did not become ready within {ready_timeout:?} (exit status {status:?}); last log lines:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we own; no memory is touched.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.signal(libc::SIGCONT);
            self.kill();
        }
    }
}

/// A server process a testbed started (a database, an S3 server): killed and reaped when
/// dropped, so a test that fails halfway leaves no server behind.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Starts `command` without stdin and with its output discarded (a server that logs to
    /// a file of its own, or not at all).
    pub fn spawn_quiet(command: &mut Command) -> anyhow::Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .map_err(|e| anyhow::anyhow!("cannot run {:?}: {e}", command.get_program()))
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
