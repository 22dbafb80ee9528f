//! The fuzz targets of `apitap-chaos fuzz`, briefly (a few hundred cases each, seconds in a
//! debug build), and the runner itself: a failing property is reported with its shrunk
//! input, a panic with its location, a slow case as over the budget.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apitap_chaos::fuzz::{runner, RunOptions, Target};
use proptest::prelude::*;

fn opts(cases: u64) -> RunOptions {
    RunOptions {
        cases,
        max_time: None,
        seed: 1,
        // Generous: tests share two cores with builds; only a real hang should trip it.
        case_budget: Duration::from_secs(20),
        progress: None,
    }
}

fn run_briefly(target: Target, cases: u64) {
    let outcome = target.run(&opts(cases));
    assert_eq!(outcome.failure, None, "{}", target.name());
    assert_eq!(outcome.cases, cases);
}

/// One test per target: `test: Target, cases;`.
macro_rules! briefly {
    ($($test:ident: $target:ident, $cases:expr;)*) => {
        $(
            #[test]
            fn $test() {
                run_briefly(Target::$target, $cases);
            }
        )*
    };
}

briefly! {
    spec_target: Spec, 1_000;
    jsonpath_target: Jsonpath, 1_000;
    link_target: Link, 1_000;
    infer_target: Infer, 300;
}

#[test]
fn a_failure_is_reported_with_its_shrunk_input() {
    let outcome = runner::run(
        "short",
        || prop::collection::vec(0..100u32, 0..20),
        |v: Vec<u32>| {
            prop_assert!(v.iter().all(|n| *n < 50));
            Ok(())
        },
        &opts(1_000),
    );
    assert_eq!(outcome.failures, 1);
    let failure = outcome.failure.unwrap();
    assert!(failure.contains("minimal input"), "{failure}");
    // Shrunk to one element, the smallest that fails.
    assert!(failure.contains("[\n    50,\n]"), "{failure}");
    assert!(outcome.cases < 1_000, "{}", outcome.cases);
}

#[test]
fn a_panic_is_a_failure_with_its_location() {
    let outcome = runner::run(
        "panics",
        || 0..10u32,
        |n: u32| {
            assert!(n < 5, "too big: {n}");
            Ok(())
        },
        &opts(1_000),
    );
    let failure = outcome.failure.unwrap();
    assert!(failure.contains("too big: 5"), "{failure}");
    assert!(
        failure.contains("first panic:") && failure.contains("fuzz.rs"),
        "{failure}"
    );
}

#[test]
fn a_slow_case_is_over_the_budget() {
    let outcome = runner::run(
        "slow",
        || 0..10u32,
        |n: u32| {
            if n == 7 {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        },
        &RunOptions {
            case_budget: Duration::from_millis(20),
            ..opts(1_000)
        },
    );
    let failure = outcome.failure.unwrap();
    assert!(failure.contains("over the case budget"), "{failure}");
    assert!(failure.contains("7"), "{failure}");
}

#[test]
fn the_same_seed_runs_the_same_cases() {
    let collect = |seed| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        runner::run(
            "seeded",
            any::<u64>,
            move |n| {
                sink.lock().unwrap().push(n);
                Ok(())
            },
            &RunOptions { seed, ..opts(50) },
        );
        let v = seen.lock().unwrap().clone();
        v
    };
    assert_eq!(collect(3), collect(3));
    assert_ne!(collect(3), collect(4));
}
