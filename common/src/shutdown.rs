//! A shutdown signal every task can wait on: one sender, many cheap receivers.

use tokio::sync::watch;

/// Triggers shutdown for every [`ShutdownSignal`] cloned from it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

/// Resolves once shutdown was triggered.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (tx, _) = watch::channel(false);
        Self { tx }
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.tx.subscribe(),
        }
    }

    /// Triggers shutdown on the first SIGTERM or SIGINT.
    pub fn trigger_on_os_signal(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            wait_for_os_signal().await;
            this.trigger();
        });
    }
}

impl ShutdownSignal {
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    pub async fn wait(&mut self) {
        // An error means the sender is gone, which also means shutdown.
        let _ = self.rx.wait_for(|v| *v).await;
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn wait_for_os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
