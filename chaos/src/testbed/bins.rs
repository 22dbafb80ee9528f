//! Locating the workspace's binaries (built by `cargo build --workspace --bins`).

use std::path::PathBuf;

/// The directory holding `apitap-coordinator`, `apitap-worker` and `apitapctl`:
/// `APITAP_BIN_DIR` if set, else the directory of the running executable (or its parent
/// when it runs from `target/*/deps`).
pub fn dir() -> PathBuf {
    if let Ok(d) = std::env::var("APITAP_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut d = exe.parent().map(PathBuf::from).unwrap_or_default();
    if d.ends_with("deps") {
        d.pop();
    }
    d
}

/// Path of binary `name`, with a clear error when it has not been built.
pub fn path(name: &str) -> anyhow::Result<PathBuf> {
    let p = dir().join(name);
    if !p.exists() {
        anyhow::bail!(
            "{} does not exist; build the binaries first with `cargo build --workspace --bins` (scripts/test.sh does this)",
            p.display()
        );
    }
    Ok(p)
}
