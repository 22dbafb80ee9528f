//! Statistics the benches and drills report: nearest-rank percentiles and a
//! `{n, mean, p50, p99, max}` summary of durations.

use serde_json::{json, Value};

/// Nearest-rank percentile `p` (0–100) of `sorted` (ascending); 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `{n, mean, p50, p99, max}` of durations in milliseconds, rounded to 0.1 ms.
pub fn summary(ms: &[f64]) -> Value {
    let mut s = ms.to_vec();
    s.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 10.0).round() / 10.0;
    let mean = if s.is_empty() {
        0.0
    } else {
        s.iter().sum::<f64>() / s.len() as f64
    };
    json!({
        "n": s.len(),
        "mean": r(mean),
        "p50": r(percentile(&s, 50.0)),
        "p99": r(percentile(&s, 99.0)),
        "max": r(s.last().copied().unwrap_or(0.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
