//! `ratelimit set|list|delete|clear-backoff`.

use apitap_proto::v1::{
    ListRateLimitsRequest, RateLimitInfo, RateLimitKeyRequest, SetRateLimitRequest,
};

use crate::cli::Format;
use crate::client::Client;
use crate::output::{self, table_of};

fn print(limits: &[RateLimitInfo]) {
    if limits.is_empty() {
        outln!("no rate limits; set one with: apitapctl ratelimit set KEY --rps R --burst B");
        return;
    }
    let now = apitap_common::time::now_ms();
    table_of(
        &[
            "KEY",
            "LIMIT RPS",
            "BURST",
            "GRANTED RPS",
            "USED (1s)",
            "WORKERS",
            "BACK-OFF",
        ],
        limits,
        |l| {
            vec![
                l.key.clone(),
                format!("{}", l.rps),
                l.burst.to_string(),
                format!("{:.1}", l.granted_rps),
                l.used_last_second.to_string(),
                l.workers.to_string(),
                if l.backoff_until_ms > now {
                    format!("{}ms", l.backoff_until_ms - now)
                } else {
                    "-".into()
                },
            ]
        },
    );
}

pub async fn set(
    client: &mut Client,
    format: Format,
    key: String,
    rps: f64,
    burst: u32,
) -> anyhow::Result<i32> {
    let req = SetRateLimitRequest { key, rps, burst };
    let info = client
        .send(req, |mut c, r| async move { c.set_rate_limit(r).await })
        .await?;
    if !output::structured(format, &info) {
        print(std::slice::from_ref(&info));
    }
    Ok(0)
}

pub async fn list(client: &mut Client, format: Format) -> anyhow::Result<i32> {
    let resp = client
        .call(|mut c| async move { c.list_rate_limits(ListRateLimitsRequest {}).await })
        .await?;
    if !output::structured(format, &resp.limits) {
        print(&resp.limits);
    }
    Ok(0)
}

/// `ratelimit delete KEY` or, with `backoff_only`, `ratelimit clear-backoff KEY`.
pub async fn drop(
    client: &mut Client,
    format: Format,
    key: String,
    backoff_only: bool,
) -> anyhow::Result<i32> {
    let req = RateLimitKeyRequest { key };
    let info = client
        .send(req, |mut c, r| async move {
            if backoff_only {
                c.clear_backoff(r).await
            } else {
                c.delete_rate_limit(r).await
            }
        })
        .await?;
    if !output::structured(format, &info) {
        if backoff_only {
            print(std::slice::from_ref(&info));
        } else {
            outln!("rate limit {} deleted", info.key);
        }
    }
    Ok(0)
}
