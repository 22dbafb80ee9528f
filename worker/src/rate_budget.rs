//! `RateBudget`: this worker's capacity leases on global rate limits (DESIGN §7). It asks
//! the leader for a share of each key's limit that its runners use, renews before the TTL
//! ends, and hands out permits with a GCRA token bucket at the granted rate. Back-offs
//! (an upstream 429) arrive pushed from the leader and stop every permit at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::worker_rpc;
use actix::prelude::*;
use apitap_common::budget::Bucket;
use apitap_proto::client::LeaderClient;
use apitap_proto::v1::{BackoffReport, BudgetRequest, WatchBackoffsRequest};

const RENEW_EVERY: Duration = Duration::from_millis(250);
/// How long a permit request waits before asking again.
const RECHECK: Duration = Duration::from_millis(20);

/// A runner starts or stops calling `key`; `wants` is the rate it could use.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Demand {
    pub key: String,
    pub wants: f64,
    pub active: bool,
}

/// May a request to `key` go out now?
#[derive(Message)]
#[rtype(result = "Permit")]
pub struct Acquire {
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub enum Permit {
    Go,
    /// Ask again after this long.
    Wait(Duration),
}

/// Nobody may call `key` before `until_ms` (Unix ms).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Backoff {
    pub key: String,
    pub until_ms: u64,
    /// Seen here first (an upstream 429): tell the cluster.
    pub report: bool,
}

#[derive(Debug, Default)]
struct KeyState {
    users: u32,
    wants: f64,
    /// The last grant and the token bucket it paces.
    bucket: Bucket,
    renewing: bool,
}

pub struct RateBudget {
    worker_id: String,
    client: LeaderClient,
    keys: HashMap<String, KeyState>,
}

impl RateBudget {
    /// `client` reaches the coordinators; its deadline should stay under a grant's TTL.
    pub fn new(worker_id: String, client: LeaderClient) -> Self {
        Self {
            worker_id,
            client,
            keys: HashMap::new(),
        }
    }

    fn renew(&mut self, key: &str, ctx: &mut Context<Self>) {
        let Some(k) = self.keys.get_mut(key) else {
            return;
        };
        if k.renewing {
            return;
        }
        k.renewing = true;
        let now = Instant::now();
        let req = BudgetRequest {
            worker_id: self.worker_id.clone(),
            key: key.to_string(),
            wants_rps: if k.users > 0 { k.wants } else { 0.0 },
            has_rps: k.bucket.has(now),
            used: k.bucket.take_used(),
        };
        let mut client = self.client.clone();
        let sent = now;
        let fut = async move {
            let r = worker_rpc::call(&mut client, req, |mut c, r| async move {
                c.acquire_budget(r).await
            })
            .await;
            (client, r)
        };
        let key = key.to_string();
        ctx.spawn(fut.into_actor(self).map(move |(client, r), act, _| {
            act.client = client;
            let Some(k) = act.keys.get_mut(&key) else {
                return;
            };
            k.renewing = false;
            match r {
                Ok(g) => k.bucket.apply(&(&g).into(), sent),
                Err(e) => {
                    tracing::debug!(key = %key, error = %e.message(), "budget renewal failed")
                }
            }
        }));
    }

    fn watch_backoffs(&self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let mut client = self.client.clone();
        let worker_id = self.worker_id.clone();
        tokio::spawn(async move {
            loop {
                let req = WatchBackoffsRequest {
                    worker_id: worker_id.clone(),
                };
                let stream = worker_rpc::call(&mut client, req, |mut c, r| async move {
                    c.watch_backoffs(r).await
                })
                .await;
                if let Ok(mut stream) = stream {
                    while let Ok(Some(e)) = stream.message().await {
                        if me
                            .try_send(Backoff {
                                key: e.key,
                                until_ms: e.until_ms,
                                report: false,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                if !me.connected() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

impl Actor for RateBudget {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.watch_backoffs(ctx);
        ctx.run_interval(RENEW_EVERY, |act, ctx| {
            let keys: Vec<String> = act
                .keys
                .iter()
                .filter(|(_, k)| k.users > 0 || k.bucket.was_used())
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                act.renew(&key, ctx);
            }
        });
    }
}

impl Handler<Demand> for RateBudget {
    type Result = ();
    fn handle(&mut self, msg: Demand, ctx: &mut Self::Context) {
        let k = self.keys.entry(msg.key.clone()).or_default();
        if msg.active {
            k.users += 1;
            k.wants = k.wants.max(msg.wants);
        } else {
            k.users = k.users.saturating_sub(1);
        }
        if msg.active && k.bucket.limited().is_none() {
            self.renew(&msg.key, ctx);
        }
    }
}

impl Handler<Acquire> for RateBudget {
    type Result = Permit;
    fn handle(&mut self, msg: Acquire, _: &mut Self::Context) -> Permit {
        let k = self.keys.entry(msg.key).or_default();
        match k
            .bucket
            .permit(Instant::now(), apitap_common::time::now_ms(), RECHECK)
        {
            Ok(()) => Permit::Go,
            Err(wait) => Permit::Wait(wait),
        }
    }
}

impl Handler<Backoff> for RateBudget {
    type Result = ();
    fn handle(&mut self, msg: Backoff, ctx: &mut Self::Context) {
        let k = self.keys.entry(msg.key.clone()).or_default();
        if k.bucket.back_off(msg.until_ms) {
            tracing::info!(key = %msg.key, until_ms = msg.until_ms, "rate-limit back-off");
        }
        if !msg.report {
            return;
        }
        let req = BackoffReport {
            worker_id: self.worker_id.clone(),
            key: msg.key,
            retry_after_ms: msg.until_ms.saturating_sub(apitap_common::time::now_ms()),
        };
        worker_rpc::report(ctx, &self.client, req, |mut c, r| async move {
            c.report_backoff(r).await
        });
    }
}

/// A cloneable handle runners use: wait for a permit, report demand and 429s.
#[derive(Clone)]
pub struct BudgetHandle {
    addr: Addr<RateBudget>,
}

impl std::fmt::Debug for BudgetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BudgetHandle")
    }
}

impl BudgetHandle {
    pub fn new(addr: Addr<RateBudget>) -> Self {
        Self { addr }
    }

    pub fn demand(&self, key: &str, wants: f64, active: bool) {
        self.addr.do_send(Demand {
            key: key.to_string(),
            wants,
            active,
        });
    }

    /// Waits until a request to `key` may go out.
    pub async fn acquire(&self, key: &str) {
        loop {
            match self
                .addr
                .send(Acquire {
                    key: key.to_string(),
                })
                .await
            {
                Ok(Permit::Go) | Err(_) => return,
                Ok(Permit::Wait(d)) => tokio::time::sleep(d).await,
            }
        }
    }

    /// An upstream 429 asked everyone to wait `retry_after`, clamped to
    /// `MAX_RETRY_AFTER_MS` (an upstream cannot stop a key for years; the coordinator
    /// clamps again).
    pub fn backoff(&self, key: &str, retry_after: Duration) {
        let max = apitap_proto::limits::MAX_RETRY_AFTER_MS;
        let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
        if ms > max {
            tracing::warn!(
                key,
                retry_after_ms = ms,
                max_ms = max,
                "retry-after clamped to MAX_RETRY_AFTER_MS"
            );
        }
        self.addr.do_send(Backoff {
            key: key.to_string(),
            until_ms: apitap_common::time::now_ms().saturating_add(ms.min(max)),
            report: true,
        });
    }
}
