//! The rate-limit page's chart: a key's limit, granted and used rate over the last minutes
//! as inline SVG drawn here (no script, no build step; the page's CSP allows it as markup).

use maud::{html, Markup};

use crate::history::rates::WINDOW;
use crate::history::RateSeries;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 150.0;
/// Room at the left for the scale's label.
const LEFT: f64 = 40.0;

/// The chart of `series`, its time axis ending at `now_ms`.
pub fn rate_chart(series: &RateSeries, now_ms: u64) -> Markup {
    let window_ms = WINDOW.as_millis() as f64;
    let top = series
        .samples
        .iter()
        .map(|s| s.limit_rps.max(s.granted_rps).max(s.used_rps))
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let x = |at_ms: u64| {
        let age = now_ms.saturating_sub(at_ms) as f64;
        LEFT + (WIDTH - LEFT) * (1.0 - (age / window_ms).min(1.0))
    };
    let y = |v: f64| HEIGHT - HEIGHT * (v.max(0.0) / top);
    let line = |value: &dyn Fn(&crate::history::RateSample) -> f64| {
        series
            .samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.at_ms), y(value(s))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let label = format!(
        "{}: limit, granted and used requests per second over the last {} minutes",
        series.key,
        WINDOW.as_secs() / 60
    );
    html! {
        figure.chart data-key=(series.key) data-samples=(series.samples.len()) {
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT + 4.0)} role="img" aria-label=(label)
                xmlns="http://www.w3.org/2000/svg" {
                title { (label) }
                line x1=(LEFT) y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#999" stroke-width="1" {}
                text x="0" y="10" font-size="10" { (format!("{top:.0} rps")) }
                text x="0" y=(HEIGHT) font-size="10" { "0" }
                polyline.limit points=(line(&|s| s.limit_rps)) fill="none" stroke="#b00"
                    stroke-width="1" stroke-dasharray="4 3" {}
                polyline.granted points=(line(&|s| s.granted_rps)) fill="none" stroke="#36c"
                    stroke-width="2" {}
                polyline.used points=(line(&|s| s.used_rps)) fill="none" stroke="#2a2"
                    stroke-width="2" {}
            }
            figcaption {
                (series.key) ": "
                span.limit { "limit" } " (dashed), " span.granted { "granted" } ", "
                span.used { "used" } " over the last " (WINDOW.as_secs() / 60) " minutes"
                @if let Some(last) = series.samples.last() {
                    " · now " (format!("{:.1}", last.granted_rps)) " granted, "
                    (format!("{:.1}", last.used_rps)) " used of " (format!("{:.1}", last.limit_rps))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::RateSample;

    #[test]
    fn a_series_becomes_three_lines_inside_the_box_and_its_key_is_escaped() {
        let now = 1_000_000;
        let series = RateSeries {
            key: "<b>api</b>".into(),
            samples: (0..3)
                .map(|i| RateSample {
                    at_ms: now - 10_000 + i * 5_000,
                    limit_rps: 10.0,
                    granted_rps: 8.0,
                    used_rps: 2.0 * i as f64,
                })
                .collect(),
        };
        let svg = rate_chart(&series, now).into_string();
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("data-samples=\"3\""), "{svg}");
        for class in ["limit", "granted", "used"] {
            let points = svg
                .split(&format!("<polyline class=\"{class}\" points=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no {class} line: {svg}"));
            let pairs: Vec<(f64, f64)> = points
                .split(' ')
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            assert_eq!(pairs.len(), 3, "{class}: {points}");
            for (x, y) in pairs {
                assert!(
                    (LEFT..=WIDTH).contains(&x) && (0.0..=HEIGHT).contains(&y),
                    "{x},{y}"
                );
            }
        }
        // The newest sample is at the right edge; used grows, so its line rises.
        assert!(svg.contains(&format!("{WIDTH:.1},")), "{svg}");
    }
}
