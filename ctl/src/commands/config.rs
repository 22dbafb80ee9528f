//! The settings in effect (flags and environment over the context file over defaults), and
//! `config view | get-contexts | use-context`.

use std::path::PathBuf;

use apitap_proto::tls::TlsArgs;
use serde::Serialize;

use crate::cli::{Cli, ConfigWhat, Format};
use crate::context::{self, ContextFile};
use crate::output::{self, table_of};

/// The coordinators apitapctl talks to when nothing names any.
pub const DEFAULT_COORDINATOR: &str = "127.0.0.1:7400";

/// Where a setting came from, for `config view`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    FlagOrEnvironment,
    Context,
    Default,
}

/// What a command connects with, resolved once.
#[derive(Debug)]
pub struct Settings {
    pub file: Option<PathBuf>,
    pub context: Option<String>,
    pub coordinators: (Vec<String>, Origin),
    pub namespace: (Option<String>, Origin),
    pub tls: (TlsArgs, Origin),
    /// A token given inline (`--token` / APITAP_TOKEN).
    token: Option<String>,
    pub token_file: (Option<PathBuf>, Origin),
}

fn pick<T>(given: Option<T>, from_context: Option<T>) -> (Option<T>, Origin) {
    match (given, from_context) {
        (Some(v), _) => (Some(v), Origin::FlagOrEnvironment),
        (None, Some(v)) => (Some(v), Origin::Context),
        (None, None) => (None, Origin::Default),
    }
}

impl Settings {
    pub fn resolve(cli: &Cli) -> anyhow::Result<Self> {
        let file = context::locate(cli.config.as_deref())?;
        let parsed = file.as_deref().map(ContextFile::read).transpose()?;
        if cli.context.is_some() && parsed.is_none() {
            anyhow::bail!(
                "--context {}: there is no context file (give --config or APITAP_CONFIG, or \
                 create ~/{})",
                cli.context.as_deref().unwrap_or_default(),
                context::DEFAULT_PATH
            );
        }
        let ctx = match &parsed {
            Some(f) => f.select(cli.context.as_deref())?.cloned(),
            None => None,
        }
        .unwrap_or_default();
        let coordinators = match (cli.coordinators.is_empty(), ctx.coordinators.is_empty()) {
            (false, _) => (cli.coordinators.clone(), Origin::FlagOrEnvironment),
            (true, false) => (ctx.coordinators.clone(), Origin::Context),
            (true, true) => (vec![DEFAULT_COORDINATOR.to_string()], Origin::Default),
        };
        let tls_given =
            cli.tls.tls_ca.is_some() || cli.tls.tls_cert.is_some() || cli.tls.tls_key.is_some();
        let tls = if tls_given {
            (cli.tls.clone(), Origin::FlagOrEnvironment)
        } else if ctx.tls_ca.is_some() || ctx.tls_cert.is_some() || ctx.tls_key.is_some() {
            let args = TlsArgs {
                tls_ca: ctx.tls_ca.clone(),
                tls_cert: ctx.tls_cert.clone(),
                tls_key: ctx.tls_key.clone(),
            };
            (args, Origin::Context)
        } else {
            (TlsArgs::default(), Origin::Default)
        };
        let token_file = match cli.token {
            Some(_) => (None, Origin::FlagOrEnvironment),
            None => pick(cli.token_file.clone(), ctx.token_file.clone()),
        };
        Ok(Self {
            context: (!ctx.name.is_empty()).then(|| ctx.name.clone()),
            file,
            coordinators,
            namespace: pick(cli.namespace.clone(), ctx.namespace.clone()),
            tls,
            token: cli.token.clone(),
            token_file,
        })
    }

    /// The token to send: inline, or read from the token file.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        match (&self.token, &self.token_file.0) {
            (Some(t), _) => Ok(Some(t.clone())),
            (None, Some(path)) => Ok(Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("token file {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            )),
            (None, None) => Ok(None),
        }
    }
}

#[derive(Serialize)]
struct View<'a> {
    file: Option<String>,
    context: Option<&'a str>,
    coordinators: &'a [String],
    coordinators_from: Origin,
    namespace: String,
    namespace_from: Origin,
    tls_ca: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_from: Origin,
    token: &'static str,
    token_file: Option<String>,
}

pub fn run(settings: &Settings, what: &ConfigWhat, format: Format) -> anyhow::Result<i32> {
    match what {
        ConfigWhat::View => view(settings, format),
        ConfigWhat::GetContexts => {
            let Some(path) = &settings.file else {
                anyhow::bail!("there is no context file (give --config or APITAP_CONFIG)");
            };
            let file = ContextFile::read(path)?;
            if output::structured(format, &file.contexts) {
                return Ok(0);
            }
            table_of(
                &["CURRENT", "NAME", "COORDINATORS", "NAMESPACE"],
                &file.contexts,
                |c| {
                    let current = file.current_context.as_deref() == Some(c.name.as_str());
                    vec![
                        if current { "*" } else { "" }.to_string(),
                        c.name.clone(),
                        c.coordinators.join(","),
                        c.namespace.clone().unwrap_or_default(),
                    ]
                },
            );
            Ok(0)
        }
        ConfigWhat::UseContext { name } => {
            let Some(path) = &settings.file else {
                anyhow::bail!("there is no context file (give --config or APITAP_CONFIG)");
            };
            let mut raw = ContextFile::read_as_written(path)?;
            if !raw.contexts.iter().any(|c| &c.name == name) {
                anyhow::bail!(
                    "no context {name:?} in {}; it has: {}",
                    path.display(),
                    raw.names()
                );
            }
            raw.current_context = Some(name.clone());
            std::fs::write(path, serde_saphyr::to_string(&raw)?)?;
            outln!("current context: {name} ({})", path.display());
            Ok(0)
        }
    }
}

fn view(s: &Settings, format: Format) -> anyhow::Result<i32> {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let v = View {
        file: path(&s.file),
        context: s.context.as_deref(),
        coordinators: &s.coordinators.0,
        coordinators_from: s.coordinators.1,
        namespace: s.namespace.0.clone().unwrap_or_else(|| "default".into()),
        namespace_from: s.namespace.1,
        tls_ca: path(&s.tls.0.tls_ca),
        tls_cert: path(&s.tls.0.tls_cert),
        tls_key: path(&s.tls.0.tls_key),
        tls_from: s.tls.1,
        token: match (&s.token, &s.token_file.0) {
            (Some(_), _) => "given inline (--token / APITAP_TOKEN)",
            (None, Some(_)) => "read from the token file",
            (None, None) => "none",
        },
        token_file: path(&s.token_file.0),
    };
    if output::structured(format, &v) {
        return Ok(0);
    }
    let dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    outln!("context file:  {}", dash(v.file));
    outln!("context:       {}", v.context.unwrap_or("-"));
    outln!(
        "coordinators:  {} ({:?})",
        v.coordinators.join(","),
        v.coordinators_from
    );
    outln!("namespace:     {} ({:?})", v.namespace, v.namespace_from);
    outln!(
        "TLS:           ca {}, cert {}, key {} ({:?})",
        dash(v.tls_ca),
        dash(v.tls_cert),
        dash(v.tls_key),
        v.tls_from
    );
    outln!("token:         {} {}", v.token, dash(v.token_file));
    Ok(0)
}
