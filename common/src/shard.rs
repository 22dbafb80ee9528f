//! Expanding `spec.shards` into the shards of a run. Pure, so the coordinator's apply stays
//! deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::PipelineSpec;

/// One unit of work of a run, with the template variables it binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDef {
    pub index: u32,
    /// Stable name of the shard within its pipeline (`all`, a value, or `start-end`).
    pub key: String,
    pub vars: BTreeMap<String, String>,
}

/// The shards of one run of `spec`, in order.
pub fn expand(spec: &PipelineSpec) -> Vec<ShardDef> {
    let Some(s) = &spec.shards else {
        return vec![ShardDef {
            index: 0,
            key: "all".into(),
            vars: BTreeMap::from([("shard.index".to_string(), "0".to_string())]),
        }];
    };
    let mut out = Vec::new();
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
        let (Ok(start), Ok(end)) = (
            crate::timestamp::parse(&w.start),
            crate::timestamp::parse(&w.end),
        ) else {
            return out;
        };
        let step = (w.step.as_secs() as i64).max(1);
        let mut lo = start;
        let mut i = 0usize;
        while lo < end {
            let hi = (lo + step).min(end);
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
    out
}

/// Cuts `start..=end` into `count` contiguous inclusive ranges whose sizes differ by at most 1.
pub fn split_range(start: i64, end: i64, count: u32) -> Vec<(i64, i64)> {
    if count == 0 || start > end {
        return Vec::new();
    }
    let total = (end as i128 - start as i128 + 1) as u128;
    let count = (count as u128).min(total);
    let base = total / count;
    let extra = total % count;
    let mut out = Vec::new();
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
        let shards = super::expand(&p.spec);
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
