//! The token endpoint over a real socket: both client authentications, refused grants and
//! clients, bearer checks on /oauth/v1 and revocation.

use std::time::Duration;

use serde_json::Value;

use super::*;

async fn server(lifetime: Duration) -> MockApiHandle {
    let config = MockApiConfig::with_records(3).with_token_lifetime(lifetime);
    start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn tokens_are_issued_checked_and_revoked() {
    let api = server(Duration::from_secs(1)).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token_url = format!("{}/oauth/token", api.url());
    let post = |form: &[(&str, &str)]| http.post(&token_url).form(form).send();

    let bad = post(&[("grant_type", "password")]).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let wrong = post(&[
        ("grant_type", "client_credentials"),
        ("client_id", "apitap-client"),
        ("client_secret", "nope"),
    ])
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);

    // client_secret_post
    let ok: Value = post(&[
        ("grant_type", "client_credentials"),
        ("client_id", "apitap-client"),
        ("client_secret", "apitap-client-secret"),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        (ok["token_type"].as_str(), ok["expires_in"].as_u64()),
        (Some("Bearer"), Some(1))
    );
    // client_secret_basic
    let basic = http
        .post(&token_url)
        .basic_auth("apitap-client", Some("apitap-client-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);

    let token = ok["access_token"].as_str().unwrap().to_string();
    let data = format!("{}/oauth/v1/all", api.url());
    assert_eq!(http.get(&data).send().await.unwrap().status(), 401);
    assert_eq!(status_with(&http, &data, &token).await, 200);
    assert_eq!(
        http.get(format!("{}/v1/all", api.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "/v1 stays open"
    );
    let revoked: Value = http
        .post(format!("{}/_admin/oauth/revoke", api.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], 2);
    assert_eq!(status_with(&http, &data, &token).await, 401);

    let log: Vec<_> = api
        .state()
        .requests()
        .into_iter()
        .map(|r| (r.path, r.status))
        .collect();
    assert_eq!(
        log.iter().filter(|(p, _)| p == "/oauth/token").count(),
        4,
        "{log:?}"
    );
    api.stop().await;
}

/// The status of a GET of `url` with `token` as its bearer token.
async fn status_with(http: &reqwest::Client, url: &str, token: &str) -> u16 {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
