//! The `spec` target: the pipeline loader (`apitap_common::spec::load`) with the generators
//! and checks of `apitap_common::fuzz::spec`, plus what only the top of the dependency graph
//! can check: a spec the loader accepts must also run, that is the worker must be able to
//! build its fetcher (URL, query, headers, auth, JSON paths, pagination) for the shards of
//! a run. A spec accepted at submit time that every worker then refuses fails late, on every
//! run, far from the person who wrote it.

use std::collections::BTreeMap;
use std::sync::Arc;

use apitap_common::fuzz::spec::{self, FILE};
use apitap_common::shard;
use apitap_common::spec::{load, secrets, Pipeline};
use apitap_worker::fetch::{client, Egress, Fetcher};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Shards of an accepted spec whose fetcher is built (the first ones; a run has up to
/// 10,000 and they differ only in their variables).
const SHARDS_CHECKED: usize = 3;

/// The watermark a shard of an incremental pipeline is given.
const WATERMARK: &str = "2026-01-01T00:00:00Z";

/// The property of one case, with the worker's HTTP client (built once per target).
pub fn check(http: &reqwest::Client, text: &str) -> Result<(), TestCaseError> {
    let env = spec::env();
    let result = load(FILE, text, Some(&env));
    spec::check(text, &result)?;
    if let Ok(pipeline) = result {
        fetchable(http, &pipeline, &env)?;
    }
    Ok(())
}

/// The worker can build a fetcher for the first shards of `pipeline`.
fn fetchable(
    http: &reqwest::Client,
    pipeline: &Pipeline,
    env: &BTreeMap<String, String>,
) -> Result<(), TestCaseError> {
    let resolved = secrets::resolve(pipeline, env);
    prop_assert!(
        resolved.is_ok(),
        "accepted but secrets do not resolve: {resolved:?}"
    );
    let resolved = resolved.unwrap();
    let shards = shard::expand(&resolved.spec).unwrap_or_default();
    for def in shards.iter().take(SHARDS_CHECKED) {
        let mut vars = def.vars.clone();
        vars.insert("watermark".to_string(), WATERMARK.to_string());
        let fetcher = Fetcher::new(http.clone(), &resolved.spec.source.http, &vars);
        prop_assert!(
            fetcher.is_ok(),
            "accepted, but the worker refuses shard {:?}: {}",
            def.key,
            fetcher.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
    Ok(())
}

/// The worker's HTTP client, as a worker builds it.
pub fn http_client() -> reqwest::Client {
    client::build(Arc::new(Egress::default())).expect("build the worker's HTTP client")
}

/// The strategy of the target.
pub fn input() -> impl Strategy<Value = String> {
    spec::any_spec()
}
