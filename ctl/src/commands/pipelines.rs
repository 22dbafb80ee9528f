//! `get pipelines`, `describe pipeline`, `delete`.

use apitap_proto::v1::{DeletePipelineRequest, GetPipelineRequest, ListPipelinesRequest};

use super::Scope;
use crate::cli::Format;
use crate::client::Client;
use crate::output::{self, age, table};

pub async fn list(client: &mut Client, format: Format, scope: &Scope) -> anyhow::Result<i32> {
    let req = ListPipelinesRequest {
        namespace: scope.listing(),
    };
    let resp = client
        .send(req, |mut c, r| async move { c.list_pipelines(r).await })
        .await?;
    if output::structured(format, &resp.pipelines) {
        return Ok(0);
    }
    if resp.pipelines.is_empty() {
        match scope.all {
            true => outln!("no pipelines; submit one with: apitapctl submit FILE"),
            false => outln!(
                "no pipelines in namespace {}; submit one with: apitapctl submit FILE (or see \
                 every namespace with -A)",
                scope.namespace()
            ),
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = resp
        .pipelines
        .iter()
        .map(|p| {
            let mut row = vec![
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
            ];
            if scope.all {
                row.insert(0, p.namespace.clone());
            }
            row
        })
        .collect();
    let mut header = vec!["NAME", "VERSION", "SCHEDULE", "SINK", "LAST RUN", "UPDATED"];
    if scope.all {
        header.insert(0, "NAMESPACE");
    }
    table(&header, &rows);
    Ok(0)
}

pub async fn describe(
    client: &mut Client,
    format: Format,
    scope: &Scope,
    name: &str,
) -> anyhow::Result<i32> {
    let req = GetPipelineRequest {
        name: name.to_string(),
        namespace: scope.namespace(),
    };
    let p = client
        .send(req, |mut c, r| async move { c.get_pipeline(r).await })
        .await?;
    if output::structured(format, &p) {
        return Ok(0);
    }
    outln!("Name:      {}", p.name);
    outln!("Namespace: {}", p.namespace);
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

pub async fn delete(
    client: &mut Client,
    format: Format,
    scope: &Scope,
    name: &str,
) -> anyhow::Result<i32> {
    let namespace = scope.namespace();
    let req = DeletePipelineRequest {
        name: name.to_string(),
        namespace: namespace.clone(),
    };
    let resp = client
        .send(req, |mut c, r| async move { c.delete_pipeline(r).await })
        .await?;
    if !output::structured(format, &resp) {
        outln!(
            "pipeline {namespace}/{name} deleted ({} active runs cancelled)",
            resp.runs_cancelled
        );
    }
    Ok(0)
}
