//! Runs one property over many generated inputs with proptest's `TestRunner`: in batches
//! (so that progress can be printed and a run can stop after a time), each batch seeded from
//! the run's seed, so that a run is reproducible; the first failure is shrunk to a minimal
//! input and ends the target.
//!
//! Panics are failures (proptest catches them); the panic hook is silenced on the threads
//! that run targets, so that shrinking does not print hundreds of panic messages, and the
//! first panic's message and location are kept for the report. A case slower than the case budget is a failure too
//! (bounded work per input), and a monitor thread ends the process when a case runs for
//! [`HANG_FACTOR`] times the budget: an endless loop never returns for the runner to judge.

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// Cases per batch of one `TestRunner`.
const BATCH: u64 = 1_000;

/// A case that runs this many times the case budget is taken for a hang.
pub const HANG_FACTOR: u32 = 10;

/// Stack of the thread that runs a target: the 2 MiB of the worker's runtime threads (and
/// of any spawned thread), so that recursion too deep for the worker fails here too.
pub const STACK_BYTES: usize = 2 << 20;

/// How long a target runs and how it reports.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Cases to run.
    pub cases: u64,
    /// Stop earlier after this long (the cases run so far are reported).
    pub max_time: Option<Duration>,
    /// Seed of the whole run.
    pub seed: u64,
    /// Longest one case may take before it counts as a failure.
    pub case_budget: Duration,
    /// Print a progress line to stderr this often (`None`: quiet).
    pub progress: Option<Duration>,
}

/// What one target's run found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: &'static str,
    pub cases: u64,
    pub failures: u64,
    pub elapsed: Duration,
    /// The failure: reason, shrunk input and where a panic happened.
    pub failure: Option<String>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.cases as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    /// Set on the threads that run targets: their panics are cases, not crashes.
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    /// The first panic of this fuzz thread since the last report.
    static FIRST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that keeps the first panic of a fuzz thread
/// silently and leaves every other thread's panics to the previous hook. Per thread, so
/// that targets run in parallel (tests) do not see each other's panics.
fn quiet_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                FIRST_PANIC.with(|p| {
                    p.borrow_mut().get_or_insert_with(|| info.to_string());
                });
            } else {
                previous(info);
            }
        }));
    });
    FUZZING.with(|f| f.set(true));
}

/// State the monitor thread reads.
struct Shared {
    cases: AtomicU64,
    /// Milliseconds since `start` at which the running case began, 0 when none runs.
    case_started: AtomicU64,
    batch: AtomicU64,
    /// Cases run when the first case failed (`u64::MAX`: none has).
    failed_at: AtomicU64,
    done: AtomicBool,
    start: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }
}

/// The seed of batch `batch` of `target` in run `seed`.
fn batch_rng(seed: u64, target: &str, batch: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&batch.to_le_bytes());
    for (i, b) in target.bytes().take(16).enumerate() {
        bytes[16 + i] = b;
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs `property` over `opts.cases` inputs of the strategy `make` builds, on a thread of
/// [`STACK_BYTES`] (the strategy is built there: recursive ones are not `Send`).
pub fn run<S, M, F>(target: &'static str, make: M, property: F, opts: &RunOptions) -> Outcome
where
    S: Strategy,
    S::Value: Debug,
    M: FnOnce() -> S + Send + 'static,
    F: Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
{
    let opts = opts.clone();
    let handle = std::thread::Builder::new()
        .name(format!("fuzz-{target}"))
        .stack_size(STACK_BYTES)
        .spawn(move || run_here(target, make(), property, &opts))
        .expect("spawn a fuzz thread");
    handle.join().unwrap_or_else(|_| Outcome {
        target,
        cases: 0,
        failures: 1,
        elapsed: Duration::ZERO,
        failure: Some("the fuzz thread panicked outside a case".to_string()),
    })
}

fn run_here<S, F>(target: &'static str, strategy: S, property: F, opts: &RunOptions) -> Outcome
where
    S: Strategy,
    S::Value: Debug,
    F: Fn(S::Value) -> Result<(), TestCaseError>,
{
    let shared = Arc::new(Shared {
        cases: AtomicU64::new(0),
        case_started: AtomicU64::new(0),
        batch: AtomicU64::new(0),
        failed_at: AtomicU64::new(u64::MAX),
        done: AtomicBool::new(false),
        start: Instant::now(),
    });
    let monitor = spawn_monitor(target, shared.clone(), opts.clone());
    quiet_panics();
    let budget = opts.case_budget;
    let checked = |value: S::Value| {
        let began = Instant::now();
        shared
            .case_started
            .store(shared.now_ms(), Ordering::Relaxed);
        let result = property(value);
        shared.case_started.store(0, Ordering::Relaxed);
        let cases = shared.cases.fetch_add(1, Ordering::Relaxed) + 1;
        let took = began.elapsed();
        let result = result.and_then(|()| {
            if took > budget {
                return Err(TestCaseError::fail(format!(
                    "the case took {took:?}, over the case budget of {budget:?}"
                )));
            }
            Ok(())
        });
        if result.is_err() {
            shared.failed_at.fetch_min(cases, Ordering::Relaxed);
        }
        result
    };
    let mut failure = None;
    let mut batch = 0;
    let mut planned = 0;
    while planned < opts.cases && failure.is_none() {
        if opts.max_time.is_some_and(|t| shared.start.elapsed() >= t) {
            break;
        }
        let n = BATCH.min(opts.cases - planned);
        shared.batch.store(batch, Ordering::Relaxed);
        let config = Config {
            cases: n as u32,
            failure_persistence: None,
            max_shrink_iters: 100_000,
            max_shrink_time: 120_000,
            max_global_rejects: u32::MAX,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, batch_rng(opts.seed, target, batch));
        match runner.run(&strategy, checked) {
            Ok(()) => {}
            Err(TestError::Fail(reason, input)) => {
                let panic = FIRST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .map(|p| format!("\nfirst panic: {p}"))
                    .unwrap_or_default();
                failure = Some(format!(
                    "{target}: {reason}\nminimal input (seed {}, batch {batch}):\n{input:#?}{panic}",
                    opts.seed
                ));
            }
            Err(TestError::Abort(reason)) => {
                failure = Some(format!("{target}: aborted: {reason}"));
            }
        }
        planned += n;
        batch += 1;
    }
    shared.done.store(true, Ordering::Relaxed);
    let _ = monitor.join();
    // Shrinking runs the property again; those runs are not cases of the target.
    let cases = shared
        .cases
        .load(Ordering::Relaxed)
        .min(shared.failed_at.load(Ordering::Relaxed));
    Outcome {
        target,
        cases,
        failures: u64::from(failure.is_some()),
        elapsed: shared.start.elapsed(),
        failure,
    }
}

/// Prints progress and ends the process on a hang (exit status 3).
fn spawn_monitor(
    target: &'static str,
    shared: Arc<Shared>,
    opts: RunOptions,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let hang_ms = (opts.case_budget * HANG_FACTOR).as_millis() as u64;
        let mut last_print = Instant::now();
        while !shared.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            let started = shared.case_started.load(Ordering::Relaxed);
            if started != 0 && shared.now_ms().saturating_sub(started) > hang_ms {
                eprintln!(
                    "fuzz {target}: a case has run for over {:?} (a hang); reproduce with \
                     --target {target} --seed {} (batch {})",
                    opts.case_budget * HANG_FACTOR,
                    opts.seed,
                    shared.batch.load(Ordering::Relaxed)
                );
                std::process::exit(3);
            }
            if let Some(every) = opts.progress {
                if last_print.elapsed() >= every {
                    last_print = Instant::now();
                    let cases = shared.cases.load(Ordering::Relaxed);
                    let secs = shared.start.elapsed().as_secs_f64();
                    eprintln!(
                        "fuzz {target}: {cases} cases in {secs:.0} s ({:.0}/s)",
                        cases as f64 / secs.max(1e-9)
                    );
                }
            }
        }
    })
}
