//! Waiting for a condition with a deadline, polling at a short interval.

use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, or fails with `what` after `timeout`.
pub fn until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the server process `server` takes TCP connections on 127.0.0.1:`port` and
/// `ready()` holds (e.g. its log says its start-up is complete), or fails when it exits
/// first or `timeout` passes; the error then carries the text of its `log`, if it has one.
pub fn listening(
    what: &str,
    server: &mut std::process::Child,
    port: u16,
    timeout: Duration,
    log: Option<&std::path::Path>,
    ready: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let log_text = || {
        log.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let outcome = until(&format!("{what} to accept connections"), timeout, || {
        if let Ok(Some(status)) = server.try_wait() {
            return Some(Err(status));
        }
        (ready() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).then_some(Ok(()))
    });
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(status)) => anyhow::bail!("{what} exited ({status}):\n{}", log_text()),
        Err(e) => anyhow::bail!("{e}; its log:\n{}", log_text()),
    }
}

/// The async form of [`until`].
pub async fn until_async<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
