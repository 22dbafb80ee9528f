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
        let signal = wait_for_os_signal();
        tokio::spawn(async move {
            signal.await;
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

    /// Waits for the next tick of `every`: `true` at the tick, `false` once shutdown was
    /// triggered (checked first), so that a periodic task reads
    /// `while shutdown.tick(&mut every).await { .. }`.
    pub async fn tick(&mut self, every: &mut tokio::time::Interval) -> bool {
        tokio::select! {
            biased;
            _ = self.wait() => false,
            _ = every.tick() => true,
        }
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is first polled:
/// call it before telling anyone the process is up, or a SIGTERM in between would kill the
/// process by the default action instead of shutting it down.
pub fn wait_for_os_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tick_is_true_at_each_tick_and_false_from_shutdown_on() {
        let shutdown = Shutdown::new();
        let mut signal = shutdown.signal();
        let mut every = tokio::time::interval(std::time::Duration::from_millis(10));
        assert!(signal.tick(&mut every).await);
        assert!(signal.tick(&mut every).await);
        shutdown.trigger();
        // The next tick is due as well: shutdown wins.
        every.reset_immediately();
        assert!(!signal.tick(&mut every).await);
        assert!(!signal.tick(&mut every).await);
    }
}
