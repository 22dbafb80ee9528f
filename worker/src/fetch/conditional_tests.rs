//! Conditional requests against the mock API's `/v1/all`, which answers `ETag`,
//! `Last-Modified` and `304 Not Modified`.

use std::collections::BTreeMap;

use apitap_chaos::mock_api::{self, MockApiConfig};
use apitap_common::checkpoint::{Position, VALIDATORS_VAR};
use serde_json::json;

use super::conditional::Validators;
use super::tests::{client, source};
use super::*;

fn fetcher(url: &str, conditional: bool, validators: Option<&str>) -> Fetcher {
    let vars: BTreeMap<String, String> = validators
        .map(|v| (VALIDATORS_VAR.to_string(), v.to_string()))
        .into_iter()
        .collect();
    Fetcher::new(
        client(),
        &source(json!({"url": url, "conditional": conditional})),
        &vars,
    )
    .unwrap()
}

#[tokio::test]
async fn an_unchanged_collection_is_not_fetched_again() {
    let api = mock_api::start(
        MockApiConfig::with_records(50),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let url = format!("{}/v1/all", api.url());
    let first = fetcher(&url, true, None)
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap();
    assert_eq!((first.status, first.records.len()), (200, 50));
    let kept = first.validators.clone().expect("validators kept");

    let again = fetcher(&url, true, Some(&kept))
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap();
    assert_eq!(
        (again.status, again.records.len(), again.bytes),
        (304, 0, 0)
    );
    assert_eq!(again.next, Position::Done);
    assert_eq!(again.validators.as_deref(), Some(kept.as_str()));

    // Last-Modified alone is enough.
    let mut date_only: Validators = serde_json::from_str(&kept).unwrap();
    date_only.etag = None;
    let by_date = fetcher(&url, true, Some(&date_only.to_json()))
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap();
    assert_eq!(by_date.status, 304);

    // New data: fetched in full, with new validators.
    api.state().dataset().grow(5);
    let grown = fetcher(&url, true, Some(&kept))
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap();
    assert_eq!((grown.status, grown.records.len()), (200, 55));
    assert_ne!(grown.validators, Some(kept.clone()));

    // Without `conditional` nothing is sent and nothing kept.
    let plain = fetcher(&url, false, Some(&kept))
        .fetch(&Position::Start, 0, 0)
        .await
        .unwrap();
    assert_eq!((plain.status, plain.validators), (200, None));
    let statuses: Vec<u16> = api.state().requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 304, 304, 200, 200]);
    api.stop().await;
}
