//! One file per command group; [`dispatch`] returns the process exit code.

mod cluster;
mod pipelines;
mod ratelimit;
mod runs;
mod submit;

use crate::cli::{Cli, ClusterWhat, Command, DescribeWhat, GetWhat, RatelimitWhat, RunAction};
use crate::client::Client;

pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let format = cli.output;
    let tls = cli.tls.load().map_err(anyhow::Error::msg)?;
    let mut client = Client::new(cli.coordinators.clone(), cli.timeout, tls);
    match cli.command {
        Command::Submit {
            file,
            no_run,
            watch,
        } => submit::submit(&mut client, format, &file, no_run, watch).await,
        Command::Validate { file } => submit::validate(&file),
        Command::Get {
            what: GetWhat::Pipelines,
        } => pipelines::list(&mut client, format).await,
        Command::Get {
            what: GetWhat::Runs { pipeline, limit },
        } => runs::list(&mut client, format, pipeline, limit).await,
        Command::Describe {
            what: DescribeWhat::Pipeline { name },
        } => pipelines::describe(&mut client, format, &name).await,
        Command::Describe {
            what: DescribeWhat::Run { run_id },
        } => runs::describe(&mut client, format, run_id).await,
        Command::Run {
            action: Some(RunAction::Cancel { run_id }),
            ..
        } => runs::cancel(&mut client, format, run_id).await,
        Command::Run {
            action: Some(RunAction::Retry { run_id, watch }),
            ..
        } => runs::retry(&mut client, format, run_id, watch).await,
        Command::Run {
            pipeline: Some(pipeline),
            watch,
            ..
        } => runs::start(&mut client, format, &pipeline, watch).await,
        Command::Run { .. } => anyhow::bail!("name the pipeline to run: apitapctl run NAME"),
        Command::Watch { run_id } => runs::watch(&mut client, format, run_id).await,
        Command::Delete { pipeline } => pipelines::delete(&mut client, format, &pipeline).await,
        Command::Ratelimit {
            what: RatelimitWhat::Set { key, rps, burst },
        } => ratelimit::set(&mut client, format, key, rps, burst).await,
        Command::Ratelimit {
            what: RatelimitWhat::List,
        } => ratelimit::list(&mut client, format).await,
        Command::Cluster { what } => match what {
            ClusterWhat::Status => cluster::status(&mut client, format).await,
            ClusterWhat::Init => cluster::init(&mut client, format).await,
            ClusterWhat::Add {
                node_id,
                addr,
                learner,
                wait,
            } => cluster::add(&mut client, format, node_id, addr, learner, wait).await,
            ClusterWhat::Remove { node_id, wait } => {
                cluster::remove(&mut client, format, node_id, wait).await
            }
        },
    }
}
