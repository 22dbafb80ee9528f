//! Busy threads beside the cluster: `bench failover --cpu-hog N` and the drills' `cpu-hog`
//! fault keep N cores busy, so figures show how the cluster behaves on a loaded machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// `n` threads spinning until the hog is dropped.
pub struct CpuHog {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CpuHog {
    pub fn start(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Threads spinning.
    pub fn cores(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hog_runs_its_threads_and_stops_when_dropped() {
        let hog = CpuHog::start(2);
        assert_eq!(hog.cores(), 2);
        drop(hog); // joins: the test ends only if every thread stopped
    }
}
