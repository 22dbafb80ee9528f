//! The drill's workload: pipelines over disjoint id ranges of the mock API, each loading its
//! own table of the drill's sink (`workload.sink`) in `append` mode without a key, so that a
//! record loaded twice shows up as two rows.

use super::scenario::Workload;
use crate::testbed::pipeline_doc;

/// One pipeline of the workload and the records it must load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillPipeline {
    pub name: String,
    pub table: String,
    /// Inclusive id range.
    pub first_id: u64,
    pub last_id: u64,
    pub shards: u32,
}

impl DrillPipeline {
    pub fn records(&self) -> u64 {
        self.last_id - self.first_id + 1
    }
}

/// The pipelines of `w`: the ids `1..=records` cut into `pipelines` contiguous ranges, each
/// paged differently so that every pagination style is exercised.
pub fn pipelines(w: &Workload) -> Vec<DrillPipeline> {
    let n = u64::from(w.pipelines);
    let base = w.records / n;
    let extra = w.records % n;
    let mut first = 1;
    (0..n)
        .map(|i| {
            let len = base + u64::from(i < extra);
            let p = DrillPipeline {
                name: format!("drill-{}", i + 1),
                table: format!("drill_{}", i + 1),
                first_id: first,
                last_id: first + len - 1,
                shards: w.shards.min(len as u32).max(1),
            };
            first += len;
            p
        })
        .collect()
}

/// The pipeline document of `p` into `sink` (a YAML flow mapping, e.g.
/// [`SinkBed::yaml`](crate::testbed::SinkBed::yaml)); `${MOCK_API_URL}` and
/// `${WAREHOUSE_URL}` are substituted by apitapctl. Generous retries: the drill's faults are
/// meant to be survived.
pub fn pipeline_yaml(p: &DrillPipeline, page_size: u64, index: usize, sink: &str) -> String {
    let paging = match index % 3 {
        0 => pipeline_doc::limit_offset(page_size),
        1 => pipeline_doc::cursor(page_size),
        _ => pipeline_doc::page_number(page_size),
    };
    pipeline_doc::Sharded {
        name: &p.name,
        ids: p.first_id..=p.last_id,
        shards: p.shards,
        paging: &paging,
        sink,
        http_extra: "      retry: { max_attempts: 10, initial_backoff: 100ms, max_backoff: 2s }\n      timeout: 20s\n",
        spec_extra: "  policy: { max_attempts: 20 }\n",
    }
    .yaml()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_cover_every_id_once() {
        let w = Workload {
            records: 100_001,
            pipelines: 3,
            shards: 8,
            ..Workload::default()
        };
        let ps = pipelines(&w);
        assert_eq!(ps.len(), 3);
        assert_eq!(ps[0].first_id, 1);
        assert_eq!(ps[2].last_id, 100_001);
        for pair in ps.windows(2) {
            assert_eq!(pair[0].last_id + 1, pair[1].first_id);
        }
        assert_eq!(ps.iter().map(|p| p.records()).sum::<u64>(), 100_001);
        let yaml = pipeline_yaml(&ps[1], 50, 1, &pipeline_doc::postgres(&ps[1].table));
        assert!(yaml.contains("count: 8"), "{yaml}");
        assert!(
            yaml.contains("/v1/cursor?from_id={{ shard.start }}"),
            "{yaml}"
        );
        assert!(yaml.contains("mode: append"), "{yaml}");
    }
}
