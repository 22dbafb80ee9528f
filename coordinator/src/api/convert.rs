//! Domain ↔ protobuf conversions, kept out of the service code.

use apitap_proto::v1::{DeadLetter, PipelineInfo, RunInfo, ShardInfo};

use crate::state::model::{PipelineRecord, Run, State};

pub fn pipeline_info(p: &PipelineRecord, state: &State) -> PipelineInfo {
    let last = p.last_run_id.and_then(|id| state.runs.get(&id));
    PipelineInfo {
        name: p.name.clone(),
        version: p.version,
        spec_yaml: p.spec_yaml.clone(),
        created_at_ms: p.created_at_ms,
        updated_at_ms: p.updated_at_ms,
        source_url: p.source_url.clone(),
        sink: p.sink.clone(),
        schedule: match (&p.cron, p.every_ms) {
            (Some(c), _) => format!("cron {c}"),
            (None, Some(ms)) => format!("every {}", humanize_ms(ms)),
            (None, None) => "manual".into(),
        },
        last_run_id: p.last_run_id.unwrap_or(0),
        last_run_state: last
            .map(|r| r.state.as_str().to_string())
            .unwrap_or_default(),
        namespace: p.namespace.clone(),
    }
}

fn humanize_ms(ms: u64) -> String {
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

pub fn run_info(r: &Run, state: &State) -> RunInfo {
    RunInfo {
        run_id: r.id,
        pipeline: r.pipeline.clone(),
        namespace: state.namespace_of_run(r).to_string(),
        pipeline_version: r.pipeline_version,
        state: r.state.as_str().to_string(),
        created_at_ms: r.created_at_ms,
        finished_at_ms: r.finished_at_ms.unwrap_or(0),
        error: r.error.clone().unwrap_or_default(),
        dead_letters: r.shards.iter().map(|s| s.dead_letters).sum(),
        shards: r
            .shards
            .iter()
            .map(|s| ShardInfo {
                index: s.def.index,
                key: s.def.key.clone(),
                state: s.state.as_str().to_string(),
                worker: s.worker.clone().unwrap_or_default(),
                fence: s.fence,
                pages: s.pages,
                records: s.records,
                attempts: s.attempts,
                error: s.error.clone().unwrap_or_default(),
                dead_letters: s.dead_letters,
                dead_letter_sample: s
                    .dead_letter_sample
                    .iter()
                    .map(|d| DeadLetter {
                        page: d.page,
                        error: d.error.clone(),
                        record: d.record.clone(),
                    })
                    .collect(),
                // The leader's soft state: filled in by `views` where it knows it.
                breaker: None,
            })
            .collect(),
    }
}
