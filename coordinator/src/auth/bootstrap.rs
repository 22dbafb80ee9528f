//! The first admin token of a new cluster: without it nobody could create the others.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::token;
use crate::node::Node;
use crate::state::access::{Role, TokenRecord};
use crate::state::command::{self, Command, CommandResult};

/// Where `cluster init` leaves the first admin token.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

/// Creates an admin token once this node leads the cluster it just initialised, and
/// writes it to `<data-dir>/admin.token`, readable by the owner only.
pub async fn first_admin_token(node: &Arc<Node>, data_dir: &Path) -> anyhow::Result<String> {
    node.raft
        .wait(Some(Duration::from_secs(30)))
        .current_leader(node.id, "the new cluster elects this node")
        .await
        .map_err(|e| anyhow::anyhow!("the new cluster did not elect this node: {e}"))?;
    let (secret, id, hash) = token::generate();
    let now = apitap_common::time::now_ms();
    let actor = format!("apitap://coordinator/{} (cluster init)", node.id);
    let cmd = Command::Audited(command::Audited {
        actor: actor.clone(),
        at_ms: now,
        cmd: Box::new(Command::CreateToken(command::CreateToken {
            token: TokenRecord {
                id: id.clone(),
                name: "first-admin".into(),
                role: Role::Admin,
                namespaces: vec!["*".into()],
                hash,
                created_at_ms: now,
                created_by: actor,
                expires_at_ms: None,
            },
        })),
    });
    // The file first: a token committed but never written would be an admin nobody has.
    let path = token_path(data_dir);
    write_private(&path, &format!("{secret}\n"))?;
    if let CommandResult::Rejected { reason } = node.propose(cmd).await? {
        anyhow::bail!("the first admin token: {reason}");
    }
    tracing::info!(token = %id, path = %path.display(), "first admin token written");
    Ok(secret)
}

/// Writes `text` to a new file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
