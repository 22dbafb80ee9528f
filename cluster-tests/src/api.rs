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

/// A Server-Sent Events answer, read event by event.
pub struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Api {
    /// `GET path` as an event stream (no overall timeout: the stream may stay open). Err
    /// carries the status and body of a refusal.
    pub async fn events(&self, path: &str) -> anyhow::Result<Result<Events, (StatusCode, Value)>> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let mut req = http.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        if status != StatusCode::OK {
            let text = resp.text().await?;
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Ok(Err((status, body)));
        }
        Ok(Ok(Events {
            resp,
            buf: String::new(),
        }))
    }
}

impl Events {
    /// The next event as (name, JSON data), waiting at most `timeout`; `None` once the
    /// stream has ended. Comment lines (keep-alives) are skipped.
    pub async fn next(&mut self, timeout: Duration) -> anyhow::Result<Option<(String, Value)>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if name.is_empty() {
                    continue;
                }
                return Ok(Some((name, serde_json::from_str(&data)?)));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .map_err(|_| anyhow::anyhow!("no event within {timeout:?}"))??;
            match chunk {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => return Ok(None),
            }
        }
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
