//! `run`, `get runs`, `describe run`, `watch`.

use std::time::Duration;

use apitap_proto::v1::{GetRunRequest, ListRunsRequest, RunInfo, StartRunRequest};
use indicatif::{ProgressBar, ProgressStyle};

use super::Scope;
use crate::cli::Format;
use crate::client::Client;
use crate::output::{self, duration_between, table, table_of};

fn totals(run: &RunInfo) -> (usize, u64, u64) {
    let done = run
        .shards
        .iter()
        .filter(|s| matches!(s.state.as_str(), "succeeded" | "failed" | "cancelled"))
        .count();
    let pages = run.shards.iter().map(|s| s.pages).sum();
    let records = run.shards.iter().map(|s| s.records).sum();
    (done, pages, records)
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

pub async fn start(
    client: &mut Client,
    format: Format,
    scope: &Scope,
    pipeline: &str,
    watch_it: bool,
) -> anyhow::Result<i32> {
    let req = StartRunRequest {
        pipeline: pipeline.to_string(),
        namespace: scope.namespace(),
    };
    let run = client
        .send(req, |mut c, r| async move { c.start_run(r).await })
        .await?;
    if !output::structured(format, &run) {
        outln!(
            "run {} of {}/{} started ({} shards)",
            run.run_id,
            run.namespace,
            run.pipeline,
            run.shards.len()
        );
    }
    if watch_it {
        return watch(client, format, run.run_id).await;
    }
    Ok(0)
}

pub async fn list(
    client: &mut Client,
    format: Format,
    scope: &Scope,
    pipeline: Option<String>,
    limit: u32,
) -> anyhow::Result<i32> {
    let req = ListRunsRequest {
        pipeline: pipeline.unwrap_or_default(),
        limit,
        namespace: scope.listing(),
    };
    let resp = client
        .send(req, |mut c, r| async move { c.list_runs(r).await })
        .await?;
    if output::structured(format, &resp.runs) {
        return Ok(0);
    }
    if resp.runs.is_empty() {
        outln!("no runs yet");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = resp
        .runs
        .iter()
        .map(|r| {
            let (done, pages, records) = totals(r);
            let mut row = vec![
                r.run_id.to_string(),
                r.pipeline.clone(),
                r.state.clone(),
                format!("{done}/{}", r.shards.len()),
                pages.to_string(),
                records.to_string(),
                duration_between(r.created_at_ms, r.finished_at_ms),
            ];
            if scope.all {
                row.insert(1, r.namespace.clone());
            }
            row
        })
        .collect();
    let mut header = vec![
        "RUN", "PIPELINE", "STATE", "SHARDS", "PAGES", "RECORDS", "DURATION",
    ];
    if scope.all {
        header.insert(1, "NAMESPACE");
    }
    table(&header, &rows);
    Ok(0)
}

async fn get(client: &mut Client, run_id: u64) -> Result<RunInfo, tonic::Status> {
    client
        .call(|mut c| async move { c.get_run(GetRunRequest { run_id }).await })
        .await
}

fn print_run(run: &RunInfo) {
    let (done, pages, records) = totals(run);
    outln!("Run:       {}", run.run_id);
    outln!(
        "Pipeline:  {}/{} (version {})",
        run.namespace,
        run.pipeline,
        run.pipeline_version
    );
    outln!("State:     {}", run.state);
    outln!(
        "Duration:  {}",
        duration_between(run.created_at_ms, run.finished_at_ms)
    );
    outln!(
        "Shards:    {done}/{} done, {pages} pages, {records} records",
        run.shards.len()
    );
    if !run.error.is_empty() {
        outln!("Error:     {}", run.error);
    }
    if run.dead_letters > 0 {
        outln!(
            "Dead letters: {} records in the sink's apitap_dead_letters table",
            run.dead_letters
        );
    }
    outln!();
    table_of(
        &[
            "SHARD", "KEY", "STATE", "WORKER", "FENCE", "ATTEMPTS", "PAGES", "RECORDS", "DEAD",
            "ERROR",
        ],
        &run.shards,
        |s| {
            vec![
                s.index.to_string(),
                s.key.clone(),
                s.state.clone(),
                if s.worker.is_empty() {
                    "-".into()
                } else {
                    s.worker.clone()
                },
                s.fence.to_string(),
                s.attempts.to_string(),
                s.pages.to_string(),
                s.records.to_string(),
                s.dead_letters.to_string(),
                s.error.clone(),
            ]
        },
    );
    for s in &run.shards {
        if let Some(b) = &s.breaker {
            let until = if b.until_ms == 0 {
                "a probe is in flight".to_string()
            } else {
                format!("for {}", output::duration_between(now_ms(), b.until_ms))
            };
            outln!(
                "Shard {} waits: the circuit breaker of {} is {} ({until})",
                s.index,
                b.host,
                b.state
            );
        }
        for d in &s.dead_letter_sample {
            outln!(
                "Shard {} dead letter (page {}): {} — {}",
                s.index,
                d.page,
                d.error,
                d.record
            );
        }
    }
}

fn now_ms() -> u64 {
    apitap_common::time::now_ms()
}

pub async fn describe(client: &mut Client, format: Format, run_id: u64) -> anyhow::Result<i32> {
    let run = get(client, run_id).await?;
    if !output::structured(format, &run) {
        print_run(&run);
    }
    Ok(0)
}

/// Polls the run until it ends, drawing a progress bar over its shards.
pub async fn watch(client: &mut Client, format: Format, run_id: u64) -> anyhow::Result<i32> {
    let mut run = get(client, run_id).await?;
    let bar = ProgressBar::new(run.shards.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} run {prefix} [{bar:30}] {pos}/{len} shards  {msg}  {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(run_id.to_string());
    if format != Format::Table {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    loop {
        let (done, pages, records) = totals(&run);
        bar.set_length(run.shards.len() as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("{} · {pages} pages · {records} records", run.state));
        if is_terminal(&run.state) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        run = get(client, run_id).await?;
    }
    bar.finish_and_clear();
    if !output::structured(format, &run) {
        print_run(&run);
    }
    Ok(if run.state == "succeeded" { 0 } else { 1 })
}

pub async fn cancel(client: &mut Client, format: Format, run_id: u64) -> anyhow::Result<i32> {
    let run = client
        .call(|mut c| async move { c.cancel_run(GetRunRequest { run_id }).await })
        .await?;
    if !output::structured(format, &run) {
        outln!("run {run_id} cancelled");
    }
    Ok(0)
}

pub async fn retry(
    client: &mut Client,
    format: Format,
    run_id: u64,
    watch_it: bool,
) -> anyhow::Result<i32> {
    let run = client
        .call(|mut c| async move { c.retry_run(GetRunRequest { run_id }).await })
        .await?;
    if !output::structured(format, &run) {
        let again = run.shards.iter().filter(|s| s.state == "pending").count();
        outln!("run {run_id}: {again} shards pending again");
    }
    if watch_it {
        return watch(client, format, run_id).await;
    }
    Ok(0)
}
