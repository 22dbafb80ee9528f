//! A `ControlService` client over several coordinator addresses: it follows the leader
//! hints followers send, moves on from unreachable nodes, and retries with back-off until a
//! deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use apitap_common::retry::Backoff;
use apitap_proto::v1::control_service_client::ControlServiceClient;
use apitap_proto::LEADER_HINT;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

pub struct Client {
    addrs: Vec<String>,
    current: usize,
    timeout: Duration,
}

impl Client {
    pub fn new(addrs: Vec<String>, timeout: Duration) -> Self {
        Self {
            addrs,
            current: 0,
            timeout,
        }
    }

    fn channel(&self) -> Result<Channel, Status> {
        let addr = &self.addrs[self.current];
        let uri = if addr.contains("://") {
            addr.clone()
        } else {
            format!("http://{addr}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| Status::invalid_argument(format!("bad coordinator address {addr:?}: {e}")))?;
        Ok(endpoint
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect_lazy())
    }

    /// Runs `f` against the leader, retrying on unavailability until the deadline.
    pub async fn call<T, F, Fut>(&mut self, mut f: F) -> Result<T, Status>
    where
        F: FnMut(ControlServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut attempt = 0;
        loop {
            let client = ControlServiceClient::new(self.channel()?).max_decoding_message_size(64 << 20);
            let err = match f(client).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(e) => e,
            };
            let retriable = matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown)
                || err.message().contains("transport error");
            if !retriable || Instant::now() >= deadline {
                if retriable {
                    return Err(Status::unavailable(format!(
                        "no coordinator answered within {:?} (tried {}): {}",
                        self.timeout,
                        self.addrs.join(", "),
                        err.message()
                    )));
                }
                return Err(err);
            }
            let hint = err
                .metadata()
                .get(LEADER_HINT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match hint {
                Some(leader) => {
                    let pos = self.addrs.iter().position(|a| *a == leader);
                    self.current = pos.unwrap_or_else(|| {
                        self.addrs.push(leader);
                        self.addrs.len() - 1
                    });
                }
                None => {
                    self.current = (self.current + 1) % self.addrs.len();
                    tokio::time::sleep(backoff.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}
