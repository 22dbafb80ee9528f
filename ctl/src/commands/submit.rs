//! `submit` and `validate`: check a pipeline file locally (with the submitter's
//! environment for `${VAR}` secrets), then hand it to the cluster.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use apitap_common::limits::Limits;
use apitap_common::spec;
use apitap_proto::v1::SubmitPipelineRequest;

use crate::cli::Format;
use crate::client::Client;
use crate::output;

/// A validated file: its text, the pipeline, and the values of its secrets.
type Loaded = (String, spec::Pipeline, BTreeMap<String, String>);

/// At most `max + 1` bytes of `file` (so a huge file, or /dev/zero, is never read whole),
/// and the file's length as far as it is known.
fn read_bounded(file: &Path, max: usize) -> std::io::Result<(Vec<u8>, u64)> {
    let f = std::fs::File::open(file)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut bytes)?;
    let len = len.max(bytes.len() as u64);
    Ok((bytes, len))
}

/// Prints the problems of a rejected file.
fn report(name: &str, errors: &spec::SpecErrors) {
    eprintln!("{errors}");
    eprintln!(
        "{name}: rejected ({} problem{}); nothing was sent to the cluster",
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
}

/// Reads and validates a file; prints every problem and returns None when invalid.
fn load(file: &Path) -> anyhow::Result<Option<Loaded>> {
    let name = file.display().to_string();
    let limits = Limits::default();
    let text = match read_bounded(file, limits.max_document_bytes) {
        Ok((_, len)) if len > limits.max_document_bytes as u64 => {
            if let Err(errors) = spec::check_document_size(&name, len, &limits) {
                report(&name, &errors);
            }
            return Ok(None);
        }
        Ok((bytes, _)) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                eprintln!("{name}: the file is not UTF-8 text; a pipeline is a YAML document");
                return Ok(None);
            }
        },
        Err(e) => {
            eprintln!("{name}: cannot read the file: {e}");
            return Ok(None);
        }
    };
    let env: BTreeMap<String, String> = std::env::vars().collect();
    match spec::load_with(&name, &text, Some(&env), &limits) {
        Ok(p) => {
            let secrets = spec::secrets::collect(&p, &env);
            Ok(Some((text, p, secrets)))
        }
        Err(errors) => {
            report(&name, &errors);
            Ok(None)
        }
    }
}

pub fn validate(file: &Path) -> anyhow::Result<i32> {
    match load(file)? {
        Some((_, p, _)) => {
            outln!("{}: pipeline {} is valid", file.display(), p.name());
            Ok(0)
        }
        None => Ok(2),
    }
}

pub async fn submit(
    client: &mut Client,
    format: Format,
    scope: &super::Scope,
    file: &Path,
    no_run: bool,
    watch: bool,
) -> anyhow::Result<i32> {
    let Some((text, pipeline, secrets)) = load(file)? else {
        return Ok(2);
    };
    let in_file = &pipeline.metadata.namespace;
    if let Some(given) = scope.given.as_ref().filter(|g| *g != in_file) {
        eprintln!(
            "{}: the pipeline is in namespace {in_file:?} (metadata.namespace) but -n / \
             APITAP_NAMESPACE says {given:?}; set `metadata.namespace: {given}` in the file, or \
             drop -n; nothing was sent to the cluster",
            file.display()
        );
        return Ok(2);
    }
    let req = SubmitPipelineRequest {
        spec_yaml: text,
        secrets: secrets.into_iter().collect(),
        start_run: !no_run,
        file: file.display().to_string(),
    };
    let resp = match client
        .call(|mut c| {
            let req = req.clone();
            async move { c.submit_pipeline(req).await }
        })
        .await
    {
        Ok(r) => r,
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            eprintln!("{}", status.message());
            eprintln!(
                "{}: rejected by the coordinator; nothing was stored",
                file.display()
            );
            return Ok(2);
        }
        Err(status) => anyhow::bail!("{}", status.message()),
    };
    if !output::structured(format, &resp) {
        let verb = if resp.created { "created" } else { "updated" };
        outln!(
            "pipeline {}/{} {verb} (version {})",
            resp.namespace,
            resp.name,
            resp.version
        );
        if resp.run_id != 0 {
            outln!(
                "run {} started; follow it with: apitapctl watch {}",
                resp.run_id,
                resp.run_id
            );
        } else if pipeline.spec.schedule.is_some() {
            outln!("runs start on its schedule");
        }
    }
    if watch && resp.run_id != 0 {
        return super::runs::watch(client, Format::Table, resp.run_id).await;
    }
    Ok(0)
}
