//! `apitap-chaos fuzz`: property-based fuzzing of the parsers that read outside input — the
//! spec loader, the JSON path subset, the `Link` header parser and JSON → Arrow inference —
//! long enough to find what the suite's few hundred cases per property do not.
//!
//! Each target is a proptest strategy and a property ([`runner`] runs it). The spec and JSON
//! path generators and checks are `apitap_common::fuzz`'s, shared with that crate's property
//! tests; the worker's targets ([`link`], [`infer`]) and the spec target's check that an
//! accepted spec runs on a worker ([`spec`]) live here, the top of the dependency graph,
//! because they need the worker library and only the fuzz command and its test use them.

pub mod infer;
pub mod link;
pub mod runner;
pub mod spec;

use std::fmt::Write;
use std::time::Duration;

use apitap_common::fuzz::{json, jsonpath};
use proptest::prelude::*;

pub use runner::{Outcome, RunOptions};

/// A fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The pipeline spec loader (`apitap_common::spec::load`).
    Spec,
    /// The JSON path subset (`apitap_common::jsonpath`).
    Jsonpath,
    /// The `Link` header parser of the worker.
    Link,
    /// JSON records → Arrow batch of the worker.
    Infer,
}

impl Target {
    pub const ALL: [Target; 4] = [Target::Spec, Target::Jsonpath, Target::Link, Target::Infer];

    pub fn name(self) -> &'static str {
        match self {
            Target::Spec => "spec",
            Target::Jsonpath => "jsonpath",
            Target::Link => "link",
            Target::Infer => "infer",
        }
    }

    /// Runs this target.
    pub fn run(self, opts: &RunOptions) -> Outcome {
        match self {
            Target::Spec => {
                let http = spec::http_client();
                runner::run(
                    "spec",
                    spec::input,
                    move |text: String| spec::check(&http, &text),
                    opts,
                )
            }
            Target::Jsonpath => runner::run(
                "jsonpath",
                || {
                    (
                        prop::collection::vec(jsonpath::step(), 0..8),
                        jsonpath::text(),
                        json::any_value(),
                    )
                },
                |(steps, text, doc)| {
                    jsonpath::check_steps(&steps)?;
                    jsonpath::check_text(&text, &doc)
                },
                opts,
            ),
            Target::Link => runner::run("link", link::input, link::check, opts),
            Target::Infer => runner::run("infer", infer::input, infer::check, opts),
        }
    }
}

/// The final table: target, cases, failures, seconds, cases per second.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>12} {:>9} {:>9} {:>10}",
        "target", "cases", "failures", "seconds", "cases/s"
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "{:<10} {:>12} {:>9} {:>9.1} {:>10.0}",
            o.target,
            o.cases,
            o.failures,
            o.elapsed.as_secs_f64(),
            o.rate()
        );
    }
    let cases: u64 = outcomes.iter().map(|o| o.cases).sum();
    let failures: u64 = outcomes.iter().map(|o| o.failures).sum();
    let secs: f64 = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).sum();
    let _ = writeln!(
        out,
        "{:<10} {:>12} {:>9} {:>9.1} {:>10.0}",
        "total",
        cases,
        failures,
        secs,
        cases as f64 / secs.max(1e-9)
    );
    out
}

/// Default case budget: far above what any case takes in a release build.
pub const DEFAULT_CASE_BUDGET: Duration = Duration::from_secs(2);
