//! How a worker's share of a key's rate limit becomes its token bucket. The coordinator uses
//! the same rule to budget the fleet's worst 1-second window, so both sides must agree: this
//! is the one place it is written.
//!
//! A bucket at rate `r` with depth `b` lets at most about `r + b` requests through in any
//! second. The depth is the worker's share of the key's burst, but at least 1 (a bucket must
//! hold a token to send at all), so many small shares together hold more than the key's
//! burst: the coordinator lowers the rates to make room for that (DESIGN §7).
//!
//! [`Bucket`] is that bucket, paced by GCRA: the worker's `RateBudget` and the simulated
//! workers of `apitap-chaos bench ratelimit` both spend their grants through it.

use std::time::{Duration, Instant};

/// The bucket depth of a worker granted `rps` of a key limited to `limit` rps with `burst`.
pub fn worker_burst(burst: u32, rps: f64, limit: f64) -> f64 {
    let share = if limit > 0.0 { rps / limit } else { 0.0 };
    (f64::from(burst) * share).floor().max(1.0)
}

/// The most requests a worker granted `rps` can send in a 1-second window: its rate plus its
/// bucket, or nothing without a rate.
pub fn worker_window(burst: u32, rps: f64, limit: f64) -> f64 {
    if rps > 0.0 {
        rps + worker_burst(burst, rps, limit)
    } else {
        0.0
    }
}

/// A leader's answer for one key (the fields of `BudgetGrant` a bucket uses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grant {
    /// False: the key has no limit, requests go at once.
    pub limited: bool,
    /// This worker's share, requests per second.
    pub rps: f64,
    /// The key's limit, whole fleet.
    pub limit_rps: f64,
    /// The key's burst, whole fleet.
    pub burst: u32,
    /// How long the share is valid from when it was asked for.
    pub ttl: Duration,
    /// Unix ms until which nobody may call the key.
    pub backoff_until_ms: u64,
}

/// One worker's budget for one key: its last grant and a GCRA token bucket at its rate.
#[derive(Debug, Default)]
pub struct Bucket {
    /// None until the leader first answers.
    limited: Option<bool>,
    rps: f64,
    burst: f64,
    expires: Option<Instant>,
    /// GCRA theoretical arrival time.
    tat: Option<Instant>,
    /// Unix ms until which nobody may call the key (only ever extends).
    backoff_until_ms: u64,
    /// Requests let through under a limit since [`take_used`](Self::take_used).
    used: u64,
}

impl Bucket {
    /// Takes the leader's answer to a request sent at `sent`.
    pub fn apply(&mut self, g: &Grant, sent: Instant) {
        self.limited = Some(g.limited);
        self.back_off(g.backoff_until_ms);
        if !g.limited {
            return;
        }
        self.rps = g.rps;
        self.burst = worker_burst(g.burst, g.rps, g.limit_rps);
        self.expires = Some(sent + g.ttl);
    }

    /// Nobody sends before `until_ms`; returns whether that extended the back-off.
    pub fn back_off(&mut self, until_ms: u64) -> bool {
        let later = until_ms > self.backoff_until_ms;
        self.backoff_until_ms = self.backoff_until_ms.max(until_ms);
        later
    }

    /// Whether the leader has answered for this key yet (and whether it is limited).
    pub fn limited(&self) -> Option<bool> {
        self.limited
    }

    /// The share held at `now` (0 once the grant has expired).
    pub fn has(&self, now: Instant) -> f64 {
        if self.expires.is_some_and(|e| e > now) {
            self.rps
        } else {
            0.0
        }
    }

    /// Requests let through since the last call (for the next renewal's report).
    pub fn take_used(&mut self) -> u64 {
        std::mem::take(&mut self.used)
    }

    /// Whether requests went out since the last [`take_used`](Self::take_used).
    pub fn was_used(&self) -> bool {
        self.used > 0
    }

    /// `Ok` to send now, else how long to wait before asking again (at most `recheck`).
    /// Nothing goes before the first answer, during a back-off, or without an unexpired share.
    pub fn permit(&mut self, now: Instant, now_ms: u64, recheck: Duration) -> Result<(), Duration> {
        if now_ms < self.backoff_until_ms {
            return Err(Duration::from_millis(self.backoff_until_ms - now_ms).min(recheck));
        }
        match self.limited {
            None => return Err(recheck),
            Some(false) => return Ok(()),
            Some(true) => {}
        }
        if self.rps <= 0.0 || self.expires.is_none_or(|e| e <= now) {
            return Err(recheck);
        }
        let interval = Duration::from_secs_f64(1.0 / self.rps);
        let tolerance = interval.mul_f64(self.burst - 1.0);
        let tat = self.tat.map_or(now, |t| t.max(now));
        if tat > now + tolerance {
            return Err((tat - tolerance - now).min(recheck));
        }
        self.tat = Some(tat + interval);
        self.used += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECHECK: Duration = Duration::from_millis(20);

    fn grant(rps: f64, burst: u32, limit_rps: f64, ttl: Duration) -> Grant {
        Grant {
            limited: true,
            rps,
            limit_rps,
            burst,
            ttl,
            backoff_until_ms: 0,
        }
    }

    #[test]
    fn gcra_paces_at_the_granted_rate_with_the_burst() {
        let now = Instant::now();
        let mut b = Bucket::default();
        // 10 of 10 rps with burst 3: the whole key's bucket.
        b.apply(&grant(10.0, 3, 10.0, Duration::from_secs(10)), now);
        // A burst of 3 goes at once, the 4th waits one interval (100 ms).
        for _ in 0..3 {
            assert_eq!(b.permit(now, 0, RECHECK), Ok(()));
        }
        assert!(b.permit(now, 0, RECHECK).is_err());
        assert_eq!(
            b.permit(now + Duration::from_millis(100), 0, RECHECK),
            Ok(())
        );
        // Over 10 s at most 10 * 10 + 3 permits.
        let mut granted = 3 + 1;
        let mut t = now + Duration::from_millis(100);
        while t < now + Duration::from_secs(10) {
            t += Duration::from_millis(5);
            if b.permit(t, 0, RECHECK).is_ok() {
                granted += 1;
            }
        }
        assert!(granted <= 103, "{granted}");
        assert!(granted >= 99, "{granted}");
    }

    #[test]
    fn backoffs_and_missing_grants_stop_permits() {
        let now = Instant::now();
        let mut b = Bucket::default();
        b.apply(&grant(10.0, 1, 10.0, Duration::from_secs(1)), now);
        assert!(b.back_off(5_000));
        assert!(!b.back_off(4_000), "a back-off never shortens");
        assert!(b.permit(now, 4_000, RECHECK).is_err());
        assert_eq!(b.permit(now, 5_000, RECHECK), Ok(()));
        // The grant expired.
        assert!(b
            .permit(now + Duration::from_secs(1), 6_000, RECHECK)
            .is_err());
        b.apply(
            &Grant {
                limited: false,
                ..grant(0.0, 1, 0.0, Duration::ZERO)
            },
            now,
        );
        assert_eq!(b.permit(now, 6_000, RECHECK), Ok(()));
    }

    #[test]
    fn the_bucket_paces_at_the_grant_with_a_scaled_burst() {
        let now = Instant::now();
        let mut b = Bucket::default();
        assert!(
            b.permit(now, 0, RECHECK).is_err(),
            "nothing before the first grant"
        );
        b.apply(&grant(10.0, 5, 50.0, Duration::from_secs(10)), now);
        // Burst 5 × 10/50 = 1: one at once, the next after 100 ms.
        assert_eq!(b.burst, 1.0);
        assert!(b.permit(now, 0, RECHECK).is_ok());
        assert!(b.permit(now, 0, RECHECK).is_err());
        assert!(b
            .permit(now + Duration::from_millis(100), 0, RECHECK)
            .is_ok());
        let mut sent = 2;
        let mut t = now + Duration::from_millis(100);
        while t < now + Duration::from_secs(5) {
            t += Duration::from_millis(1);
            if b.permit(t, 0, RECHECK).is_ok() {
                sent += 1;
            }
        }
        assert!((50..=52).contains(&sent), "{sent}");
        assert!(b.was_used());
        assert_eq!(b.take_used(), sent);
        assert!(!b.was_used());
        assert_eq!(b.has(now + Duration::from_secs(9)), 10.0);
        assert_eq!(b.has(now + Duration::from_secs(11)), 0.0);
    }

    #[test]
    fn depth_is_the_share_of_the_burst_but_at_least_one() {
        assert_eq!(worker_burst(10, 25.0, 50.0), 5.0);
        assert_eq!(worker_burst(5, 3.125, 50.0), 1.0);
        assert_eq!(worker_burst(5, 0.0, 0.0), 1.0);
        assert_eq!(worker_window(5, 0.0, 50.0), 0.0);
        assert_eq!(worker_window(10, 25.0, 50.0), 30.0);
    }
}
