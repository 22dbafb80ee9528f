//! `get pipelines`, `describe pipeline`, `delete`.

use apitap_proto::v1::{DeletePipelineRequest, GetPipelineRequest, ListPipelinesRequest};

use crate::cli::Format;
use crate::client::Client;
use crate::output::{self, age, table};

pub async fn list(client: &mut Client, format: Format) -> anyhow::Result<i32> {
    let resp = client
        .call(|mut c| async move { c.list_pipelines(ListPipelinesRequest {}).await })
        .await?;
    if output::structured(format, &resp.pipelines) {
        return Ok(0);
    }
    if resp.pipelines.is_empty() {
        outln!("no pipelines; submit one with: apitapctl submit FILE");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = resp
        .pipelines
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.to_string(),
                p.schedule.clone(),
                p.sink.clone(),
                if p.last_run_id == 0 {
                    "-".into()
                } else {
                    format!("{} ({})", p.last_run_id, p.last_run_state)
                },
                age(p.updated_at_ms),
            ]
        })
        .collect();
    table(
        &["NAME", "VERSION", "SCHEDULE", "SINK", "LAST RUN", "UPDATED"],
        &rows,
    );
    Ok(0)
}

pub async fn describe(client: &mut Client, format: Format, name: &str) -> anyhow::Result<i32> {
    let name = name.to_string();
    let p = client
        .call(|mut c| {
            let name = name.clone();
            async move { c.get_pipeline(GetPipelineRequest { name }).await }
        })
        .await?;
    if output::structured(format, &p) {
        return Ok(0);
    }
    outln!("Name:      {}", p.name);
    outln!("Version:   {}", p.version);
    outln!("Source:    {}", p.source_url);
    outln!("Sink:      {}", p.sink);
    outln!("Schedule:  {}", p.schedule);
    if p.last_run_id != 0 {
        outln!("Last run:  {} ({})", p.last_run_id, p.last_run_state);
    }
    outln!("Updated:   {} ago", age(p.updated_at_ms));
    outln!("Spec:");
    for line in p.spec_yaml.lines() {
        outln!("  {line}");
    }
    Ok(0)
}

pub async fn delete(client: &mut Client, format: Format, name: &str) -> anyhow::Result<i32> {
    let name = name.to_string();
    let resp = client
        .call(|mut c| {
            let name = name.clone();
            async move { c.delete_pipeline(DeletePipelineRequest { name }).await }
        })
        .await?;
    if !output::structured(format, &resp) {
        outln!(
            "pipeline {name} deleted ({} active runs cancelled)",
            resp.runs_cancelled
        );
    }
    Ok(0)
}
