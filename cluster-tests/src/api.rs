//! A client of a coordinator's HTTP JSON API (`/api`), with a bearer token or without.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

/// An HTTP client of one admin server, with a token or without.
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(admin: &str, token: Option<&str>) -> Api {
        Api {
            base: format!("http://{admin}"),
            token: token.map(str::to_owned),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        }
    }

    /// `GET` (or `POST` without a body) `path`: the status and the body (JSON when it
    /// parses, else text).
    pub async fn send(&self, post: bool, path: &str) -> anyhow::Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = if post {
            self.http.post(url)
        } else {
            self.http.get(url)
        };
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// `GET path`, which must answer 200.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.send(false, path).await?;
        anyhow::ensure!(status == StatusCode::OK, "GET {path}: {status} {body}");
        Ok(body)
    }
}

/// p50 and p99 of `n` sequential GETs of `path`, in milliseconds.
pub async fn latency(api: &Api, path: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = api.send(false, path).await?;
        anyhow::ensure!(status == StatusCode::OK, "{path}: {status}");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    Ok((at(0.5), at(0.99)))
}
