//! Expanding `spec.shards` into the shards of a run. Pure, so the coordinator's apply stays
//! deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::{LimitError, Limits};
use crate::spec::{PipelineSpec, ShardWindow, Shards};

/// One unit of work of a run, with the template variables it binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDef {
    pub index: u32,
    /// Stable name of the shard within its pipeline (`all`, a value, or `start-end`).
    pub key: String,
    pub vars: BTreeMap<String, String>,
}

/// Why the shards of a spec cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// More shards than `max_shards`; `path` is the key to change.
    #[error("{path}: {error}")]
    TooMany {
        path: &'static str,
        error: LimitError,
    },
    /// A window bound that is not a timestamp (validation rejects these before).
    #[error("{path}: {message}")]
    Invalid { path: &'static str, message: String },
}

/// The shards of one run of `spec`, in order, within the default [`Limits`].
pub fn expand(spec: &PipelineSpec) -> Result<Vec<ShardDef>, ExpandError> {
    expand_with(spec, &Limits::default())
}

/// The shards of one run of `spec`, in order. Their number is checked against
/// `limits.max_shards` before anything is allocated.
pub fn expand_with(spec: &PipelineSpec, limits: &Limits) -> Result<Vec<ShardDef>, ExpandError> {
    let Some(s) = &spec.shards else {
        return Ok(vec![ShardDef {
            index: 0,
            key: "all".into(),
            vars: BTreeMap::from([("shard.index".to_string(), "0".to_string())]),
        }]);
    };
    let n = check_count(s, limits.max_shards)?;
    // n <= max_shards, which Limits keeps far below usize::MAX.
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    if let Some(values) = &s.values {
        for (i, v) in values.iter().enumerate() {
            let vars = BTreeMap::from([
                ("shard.index".to_string(), i.to_string()),
                ("shard.value".to_string(), v.clone()),
                (s.param.clone(), v.clone()),
            ]);
            out.push(ShardDef {
                index: i as u32,
                key: v.clone(),
                vars,
            });
        }
    } else if let Some(w) = &s.window {
        let (start, end, step) = window_bounds(w)?;
        let mut lo = start;
        let mut i = 0usize;
        while lo < end {
            let hi = lo.saturating_add(step).min(end);
            let (a, b) = (crate::timestamp::format(lo), crate::timestamp::format(hi));
            let value = format!("{a}/{b}");
            let vars = BTreeMap::from([
                ("shard.index".to_string(), i.to_string()),
                ("shard.value".to_string(), value.clone()),
                ("shard.start".to_string(), a),
                ("shard.end".to_string(), b),
                (s.param.clone(), value.clone()),
            ]);
            out.push(ShardDef {
                index: i as u32,
                key: value,
                vars,
            });
            lo = hi;
            i += 1;
        }
    } else if let Some(r) = &s.range {
        for (i, (start, end)) in split_range(r.start, r.end, r.count).into_iter().enumerate() {
            let value = format!("{start}-{end}");
            let vars = BTreeMap::from([
                ("shard.index".to_string(), i.to_string()),
                ("shard.value".to_string(), value.clone()),
                ("shard.start".to_string(), start.to_string()),
                ("shard.end".to_string(), end.to_string()),
                (s.param.clone(), value.clone()),
            ]);
            out.push(ShardDef {
                index: i as u32,
                key: value,
                vars,
            });
        }
    }
    Ok(out)
}

/// How many shards `s` makes, computed without making them; an error above `max`.
pub fn check_count(s: &Shards, max: u64) -> Result<u64, ExpandError> {
    let (path, what, n, fix): (_, _, u128, _) = if let Some(values) = &s.values {
        let fix = format!("list at most {max} values, or split them over several pipelines");
        (
            "spec.shards.values",
            "the values make",
            values.len() as u128,
            fix,
        )
    } else if let Some(w) = &s.window {
        let (start, end, step) = window_bounds(w)?;
        let span = (i128::from(end) - i128::from(start)).max(0) as u128;
        let n = span.div_ceil(step as u128);
        let needed = span.div_ceil(u128::from(max.max(1)));
        let fix = format!("use a step of at least {needed}s, or a shorter window");
        ("spec.shards.window.step", "the window makes", n, fix)
    } else if let Some(r) = &s.range {
        let n = range_parts(r.start, r.end, r.count);
        let fix = format!("use a count of at most {max}; each shard then covers more of the range");
        ("spec.shards.range.count", "the range makes", n, fix)
    } else {
        return Ok(0);
    };
    match u64::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ExpandError::TooMany {
            path,
            error: LimitError::new(
                "max_shards",
                format!("{what} {n} shards"),
                format!("{max} shards"),
                fix,
            ),
        }),
    }
}

/// Start and end (Unix seconds) and step (seconds, at least 1) of a time window.
fn window_bounds(w: &ShardWindow) -> Result<(i64, i64, i64), ExpandError> {
    let invalid = |path, message: &str| ExpandError::Invalid {
        path,
        message: message.to_string(),
    };
    let step = match i64::try_from(w.step.as_secs()) {
        Ok(0) => return Err(invalid("spec.shards.window.step", "must be at least 1s")),
        Ok(step) => step,
        Err(_) => return Err(invalid("spec.shards.window.step", "the step is too large")),
    };
    let start =
        crate::timestamp::parse(&w.start).map_err(|e| invalid("spec.shards.window.start", &e))?;
    let end = crate::timestamp::parse(&w.end).map_err(|e| invalid("spec.shards.window.end", &e))?;
    Ok((start, end, step))
}

/// How many parts [`split_range`] cuts `start..=end` into.
fn range_parts(start: i64, end: i64, count: u32) -> u128 {
    if count == 0 || start > end {
        return 0;
    }
    let total = (i128::from(end) - i128::from(start) + 1) as u128;
    u128::from(count).min(total)
}

/// Cuts `start..=end` into `count` contiguous inclusive ranges whose sizes differ by at most 1.
/// Allocates `count` pairs: callers check the count against `max_shards` first.
pub fn split_range(start: i64, end: i64, count: u32) -> Vec<(i64, i64)> {
    let count = range_parts(start, end, count);
    if count == 0 {
        return Vec::new();
    }
    let total = (i128::from(end) - i128::from(start) + 1) as u128;
    let base = total / count;
    let extra = total % count;
    let mut out = Vec::with_capacity(count as usize);
    let mut lo = start as i128;
    for i in 0..count {
        let len = base + u128::from(i < extra);
        let hi = lo + len as i128 - 1;
        out.push((lo as i64, hi as i64));
        lo = hi + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_range;

    #[test]
    fn time_windows_tile_the_interval() {
        let yaml = "apiVersion: apitap/v1\nkind: Pipeline\nmetadata: { name: w }\nspec:\n  shards: { param: day, window: { start: \"2026-01-01T00:00:00Z\", end: \"2026-01-03T12:00:00Z\", step: 1d } }\n  source: { http: { url: \"http://x/y?from={{ shard.start }}&to={{ shard.end }}\" } }\n  sink: { sqlite: { table: t } }\n";
        let p = crate::spec::load("w.yaml", yaml, None).unwrap();
        let shards = super::expand(&p.spec).unwrap();
        let keys: Vec<_> = shards.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z",
                "2026-01-02T00:00:00Z/2026-01-03T00:00:00Z",
                "2026-01-03T00:00:00Z/2026-01-03T12:00:00Z"
            ]
        );
        assert_eq!(shards[2].vars["shard.end"], "2026-01-03T12:00:00Z");
    }

    #[test]
    fn ranges_cover_everything_once() {
        for (start, end, count) in [(1, 100, 7), (0, 0, 1), (-5, 5, 3), (1, 12, 12)] {
            let parts = split_range(start, end, count);
            assert_eq!(parts.len(), count as usize);
            assert_eq!(parts[0].0, start);
            assert_eq!(parts.last().unwrap().1, end);
            for w in parts.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
        }
    }
}
