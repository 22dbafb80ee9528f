//! One file per command group; [`dispatch`] returns the process exit code.

mod access;
mod cluster;
pub mod config;
mod pipelines;
mod ratelimit;
mod runs;
mod submit;

use crate::cli::{
    Cli, ClusterWhat, Command, DescribeWhat, GetWhat, RatelimitWhat, RunAction, SecretsWhat,
    TokenWhat,
};
use crate::client::Client;

/// The namespace a command names pipelines in (`-n`), and whether listings span every
/// namespace the caller may see (`-A`).
#[derive(Debug, Clone)]
pub struct Scope {
    /// `-n` / APITAP_NAMESPACE, if given.
    pub given: Option<String>,
    pub all: bool,
}

impl Scope {
    /// The namespace pipelines are named in.
    pub fn namespace(&self) -> String {
        self.given.clone().unwrap_or_else(|| "default".into())
    }

    /// The namespace a listing asks for: empty for every namespace.
    pub fn listing(&self) -> String {
        if self.all {
            String::new()
        } else {
            self.namespace()
        }
    }
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let format = cli.output;
    let settings = config::Settings::resolve(&cli)?;
    // Answered before TLS files are read, so that `config view` helps find a broken one.
    if let Command::Config { what } = &cli.command {
        return config::run(&settings, what, format);
    }
    let tls = settings.tls.0.load().map_err(anyhow::Error::msg)?;
    let token = settings.token()?;
    let mut client = Client::new(
        settings.coordinators.0.clone(),
        cli.timeout,
        tls,
        token.as_deref(),
    )?;
    let scope = Scope {
        given: settings.namespace.0.clone(),
        all: cli.all_namespaces,
    };
    match cli.command {
        Command::Submit {
            file,
            no_run,
            watch,
        } => submit::submit(&mut client, format, &scope, &file, no_run, watch).await,
        Command::Validate { file } => submit::validate(&file),
        Command::Get {
            what: GetWhat::Pipelines,
        } => pipelines::list(&mut client, format, &scope).await,
        Command::Get {
            what: GetWhat::Workers,
        } => cluster::workers(&mut client, format).await,
        Command::Get {
            what: GetWhat::Runs { pipeline, limit },
        } => runs::list(&mut client, format, &scope, pipeline, limit).await,
        Command::Describe {
            what: DescribeWhat::Pipeline { name },
        } => pipelines::describe(&mut client, format, &scope, &name).await,
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
        } => runs::start(&mut client, format, &scope, &pipeline, watch).await,
        Command::Run { .. } => anyhow::bail!("name the pipeline to run: apitapctl run NAME"),
        Command::Watch { run_id } => runs::watch(&mut client, format, run_id).await,
        Command::Delete { pipeline } => {
            pipelines::delete(&mut client, format, &scope, &pipeline).await
        }
        Command::Ratelimit {
            what: RatelimitWhat::Set { key, rps, burst },
        } => ratelimit::set(&mut client, format, key, rps, burst).await,
        Command::Ratelimit {
            what: RatelimitWhat::List,
        } => ratelimit::list(&mut client, format).await,
        Command::Ratelimit {
            what: RatelimitWhat::Delete { key },
        } => ratelimit::drop(&mut client, format, key, false).await,
        Command::Ratelimit {
            what: RatelimitWhat::ClearBackoff { key },
        } => ratelimit::drop(&mut client, format, key, true).await,
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
        Command::Token { what } => match what {
            TokenWhat::Create {
                name,
                role,
                namespaces,
                expires_in,
            } => access::create(&mut client, format, name, role, namespaces, expires_in).await,
            TokenWhat::List => access::list(&mut client, format).await,
            TokenWhat::Revoke { id } => access::revoke(&mut client, format, id).await,
        },
        Command::Secrets {
            what: SecretsWhat::RotateKey,
        } => access::rotate_key(&mut client, format).await,
        Command::Audit { since, limit } => access::audit(&mut client, format, since, limit).await,
        Command::Config { what } => config::run(&settings, &what, format),
    }
}
