//! The folder local sinks (a SQLite file, a files sink's folder) must stay inside
//! (`--local-sink-root`). A pipeline's author chooses those paths, and the worker writes
//! with its own rights, so without a root a spec could point a sink at the worker's own
//! files. With one, a relative path is resolved against it, and a path outside it (also
//! through `..` or a symbolic link) is refused with a user error naming the flag.

use std::path::{Component, Path, PathBuf};

use super::SinkError;

/// `None`: anywhere the worker's user can write.
#[derive(Debug, Clone, Default)]
pub struct LocalRoot(Option<PathBuf>);

impl LocalRoot {
    /// The root `dir` (an existing folder), or no root.
    pub fn new(dir: Option<&Path>) -> Result<Self, String> {
        let Some(dir) = dir else {
            return Ok(Self(None));
        };
        let canonical = dir.canonicalize().map_err(|e| {
            format!(
                "--local-sink-root {}: {e}; create the folder first",
                dir.display()
            )
        })?;
        if !canonical.is_dir() {
            return Err(format!(
                "--local-sink-root {} is not a folder",
                dir.display()
            ));
        }
        Ok(Self(Some(canonical)))
    }

    /// Where `key` (e.g. `sink.sqlite.path`) with the value `path` may be written.
    pub fn resolve(&self, key: &str, path: &str) -> Result<PathBuf, SinkError> {
        let Some(root) = &self.0 else {
            return Ok(PathBuf::from(path));
        };
        let outside = || {
            SinkError::User(format!(
                "{key} {path:?} is outside this worker's --local-sink-root {}; write a path \
                 inside it, or one relative to it",
                root.display()
            ))
        };
        let wanted = Path::new(path);
        if wanted.components().any(|c| c == Component::ParentDir) {
            return Err(outside());
        }
        let joined = root.join(wanted);
        // The deepest part that exists, with its links resolved, must be inside the root;
        // what follows it is created by the sink as plain folders and files.
        let mut existing = joined.as_path();
        while !existing.exists() {
            existing = existing.parent().ok_or_else(outside)?;
        }
        let real = existing.canonicalize().map_err(|_| outside())?;
        if !real.starts_with(root) {
            return Err(outside());
        }
        let rest = joined.strip_prefix(existing).map_err(|_| outside())?;
        Ok(real.join(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_error(r: Result<PathBuf, SinkError>) -> String {
        match r {
            Err(SinkError::User(m)) => m,
            other => panic!("expected a user error, got {other:?}"),
        }
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = LocalRoot::new(Some(dir.path())).unwrap();
        let real = dir.path().canonicalize().unwrap();
        let key = "sink.sqlite.path";
        assert_eq!(
            root.resolve(key, "out/a.db").unwrap(),
            real.join("out/a.db")
        );
        let inside = real.join("b.db");
        assert_eq!(root.resolve(key, inside.to_str().unwrap()).unwrap(), inside);

        let m = user_error(root.resolve(key, "/etc/passwd"));
        assert!(m.contains("outside this worker's --local-sink-root"), "{m}");
        user_error(root.resolve(key, "out/../../x.db"));
        // A link inside the root that points out of it does not lead out.
        std::os::unix::fs::symlink("/tmp", dir.path().join("escape")).unwrap();
        user_error(root.resolve(key, "escape/x.db"));
    }

    #[test]
    fn without_a_root_a_path_is_kept_and_a_missing_root_is_refused() {
        let none = LocalRoot::default();
        assert_eq!(
            none.resolve("k", "/etc/x").unwrap(),
            PathBuf::from("/etc/x")
        );
        let e = LocalRoot::new(Some(Path::new("/no/such/folder"))).unwrap_err();
        assert!(e.contains("create the folder first"), "{e}");
    }
}
