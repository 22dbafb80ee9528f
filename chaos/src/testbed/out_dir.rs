//! Output folders of `apitap-chaos` commands (drills, `up`): a marker file says the folder
//! is theirs, so that the next run may empty it, and a folder with anyone else's files in
//! it is refused instead of deleted.

use std::path::{Path, PathBuf};

/// Marks a folder as written by `apitap-chaos`.
const MARKER: &str = ".apitap-chaos";
/// The marker drills wrote before `up` shared it; such folders are ours too.
const OLD_MARKER: &str = ".apitap-drill";

/// Whether `dir` carries the marker of an earlier `apitap-chaos` run.
pub fn is_ours(dir: &Path) -> bool {
    dir.join(MARKER).exists() || dir.join(OLD_MARKER).exists()
}

/// Empties `dir` (or creates it) for a new run of `command` and marks it; refuses a folder
/// that holds files and was not written by `apitap-chaos`. Returns its absolute path.
pub fn fresh(dir: &Path, command: &str) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !is_ours(dir) {
            anyhow::bail!(
                "{} exists and was not written by apitap-chaos; choose another --out",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        format!("written by apitap-chaos {command}; emptied by the next run\n"),
    )?;
    Ok(std::fs::canonicalize(dir)?)
}
