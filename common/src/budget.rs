//! How a worker's share of a key's rate limit becomes its token bucket. The coordinator uses
//! the same rule to budget the fleet's worst 1-second window, so both sides must agree: this
//! is the one place it is written.
//!
//! A bucket at rate `r` with depth `b` lets at most about `r + b` requests through in any
//! second. The depth is the worker's share of the key's burst, but at least 1 (a bucket must
//! hold a token to send at all), so many small shares together hold more than the key's
//! burst: the coordinator lowers the rates to make room for that (DESIGN §7).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_the_share_of_the_burst_but_at_least_one() {
        assert_eq!(worker_burst(10, 25.0, 50.0), 5.0);
        assert_eq!(worker_burst(5, 3.125, 50.0), 1.0);
        assert_eq!(worker_burst(5, 0.0, 0.0), 1.0);
        assert_eq!(worker_window(5, 0.0, 50.0), 0.0);
        assert_eq!(worker_window(10, 25.0, 50.0), 30.0);
    }
}
