//! A channel to "the leader" of a coordinator cluster given several addresses: it follows
//! the leader hints followers send, moves on from unreachable nodes, and retries with
//! back-off until a deadline. apitapctl and workers both use it.
//!
//! One HTTP/2 channel per address is kept and reused by every call of this client (tonic
//! reconnects it on its own after a failure), so a worker's heartbeats and reports share a
//! connection instead of opening one each. A clone keeps the channels made so far and makes
//! its own after that.

use std::future::Future;
use std::time::{Duration, Instant};

use apitap_common::retry::Backoff;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::auth::{AuthChannel, Bearer};
use crate::tls::{host_of, uri, Tls};
use crate::LEADER_HINT;

#[derive(Debug, Clone)]
pub struct LeaderClient {
    addrs: Vec<String>,
    /// The channel of each address, made on first use.
    channels: Vec<Option<Channel>>,
    current: usize,
    timeout: Duration,
    /// Mutual TLS on every channel, when the cluster uses it.
    tls: Option<Tls>,
    /// The bearer token every call carries, if any.
    bearer: Bearer,
}

impl LeaderClient {
    /// `addrs` are `host:port` (or full URIs); `timeout` bounds the retries of one call.
    pub fn new(addrs: Vec<String>, timeout: Duration) -> Self {
        assert!(!addrs.is_empty(), "at least one coordinator address");
        Self {
            channels: vec![None; addrs.len()],
            addrs,
            current: 0,
            timeout,
            tls: None,
            bearer: Bearer::default(),
        }
    }

    /// Sends `token` as `authorization: Bearer <token>` with every call.
    pub fn with_token(mut self, token: Option<&str>) -> Result<Self, String> {
        self.bearer = Bearer::new(token)?;
        Ok(self)
    }

    /// The same client (with the channels made so far) and another retry deadline per call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Dials every coordinator over mutual TLS (`https://`).
    pub fn with_tls(mut self, tls: Option<Tls>) -> Self {
        self.tls = tls;
        self.channels.iter_mut().for_each(|c| *c = None);
        self
    }

    /// Every address this client knows (the configured ones and learned leaders).
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The address calls go to first.
    pub fn current(&self) -> &str {
        &self.addrs[self.current]
    }

    fn channel(&mut self) -> Result<Channel, Status> {
        if let Some(Some(channel)) = self.channels.get(self.current) {
            return Ok(channel.clone());
        }
        let addr = &self.addrs[self.current];
        let uri = uri(addr, self.tls.is_some()).map_err(Status::invalid_argument)?;
        let mut endpoint = Endpoint::from_shared(uri).map_err(|e| {
            Status::invalid_argument(format!("bad coordinator address {addr:?}: {e}"))
        })?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.client(host_of(addr)))
                .map_err(|e| {
                    Status::invalid_argument(format!("bad TLS settings for {addr:?}: {e}"))
                })?;
        }
        let channel = endpoint
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect_lazy();
        self.channels.resize(self.addrs.len(), None);
        self.channels[self.current] = Some(channel.clone());
        Ok(channel)
    }

    /// Runs `f` against the leader, retrying on unavailability until the deadline.
    pub async fn call<T, F, Fut>(&mut self, mut f: F) -> Result<T, Status>
    where
        F: FnMut(AuthChannel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        // Short: a cluster elects within about a second, and a client that slept a long
        // back-off would find the new leader late.
        let backoff = Backoff::new(Duration::from_millis(25), Duration::from_millis(250));
        let mut attempt = 0;
        loop {
            let channel = AuthChannel::new(self.channel()?, self.bearer.clone());
            let err = match f(channel).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(e) => e,
            };
            let retriable = matches!(
                err.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
            );
            if !retriable {
                return Err(err);
            }
            if Instant::now() >= deadline {
                return Err(Status::unavailable(format!(
                    "no coordinator answered within {:?} (tried {}): {}",
                    self.timeout,
                    self.addrs.join(", "),
                    err.message()
                )));
            }
            let hint = err
                .metadata()
                .get(LEADER_HINT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match hint {
                Some(leader) if leader != self.addrs[self.current] => {
                    self.current = match self.addrs.iter().position(|a| *a == leader) {
                        Some(p) => p,
                        None => {
                            self.addrs.push(leader);
                            self.addrs.len() - 1
                        }
                    };
                }
                _ => {
                    self.current = (self.current + 1) % self.addrs.len();
                    tokio::time::sleep(backoff.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}
