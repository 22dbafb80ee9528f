//! The folder local sinks (a SQLite file, a files sink's folder) must stay inside
//! (`--local-sink-root`). A pipeline's author chooses those paths, and the worker writes
//! with its own rights, so without a root a spec could point a sink at the worker's own
//! files. With one, each namespace has its own folder `ROOT/NAMESPACE`: a relative path is
//! resolved against it, and a path outside it (also through `..` or a symbolic link, even
//! a dangling one) is refused with a user error naming the flag, so one tenant cannot
//! reach another's files either.

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

    /// Where `key` (e.g. `sink.sqlite.path`) with the value `path` of a pipeline in
    /// `namespace` may be written.
    pub fn resolve(&self, namespace: &str, key: &str, path: &str) -> Result<PathBuf, SinkError> {
        let Some(top) = &self.0 else {
            return Ok(PathBuf::from(path));
        };
        let ns = Path::new(namespace);
        if ns.components().count() != 1
            || !matches!(ns.components().next(), Some(Component::Normal(_)))
        {
            return Err(SinkError::Internal(format!(
                "namespace {namespace:?} is not one folder name"
            )));
        }
        let root = &top.join(ns);
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
        // `symlink_metadata`: a dangling link exists (and then fails to canonicalize).
        let mut existing = joined.as_path();
        while existing.symlink_metadata().is_err() {
            existing = existing.parent().ok_or_else(outside)?;
        }
        let real = existing.canonicalize().map_err(|_| outside())?;
        if !real.starts_with(top) {
            return Err(outside());
        }
        let rest = joined.strip_prefix(existing).map_err(|_| outside())?;
        let resolved = real.join(rest);
        // The root's own folder may not exist yet; then what exists is above it.
        if !resolved.starts_with(root) {
            return Err(outside());
        }
        Ok(resolved)
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
    fn paths_stay_inside_the_namespace_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = LocalRoot::new(Some(dir.path())).unwrap();
        let real = dir.path().canonicalize().unwrap().join("team-a");
        let resolve = |path: &str| root.resolve("team-a", "sink.sqlite.path", path);
        assert_eq!(resolve("out/a.db").unwrap(), real.join("out/a.db"));
        let inside = real.join("b.db");
        assert_eq!(resolve(inside.to_str().unwrap()).unwrap(), inside);

        let m = user_error(resolve("/etc/passwd"));
        assert!(m.contains("outside this worker's --local-sink-root"), "{m}");
        user_error(resolve("out/../../x.db"));
        // Another namespace's folder is outside too.
        let other = dir.path().canonicalize().unwrap().join("team-b/x.db");
        user_error(resolve(other.to_str().unwrap()));
        // A link inside the folder that points out of it does not lead out, dangling or not.
        std::fs::create_dir_all(&real).unwrap();
        std::os::unix::fs::symlink("/tmp", real.join("escape")).unwrap();
        user_error(resolve("escape/x.db"));
        std::os::unix::fs::symlink("/nonexistent/file.db", real.join("dangling.db")).unwrap();
        user_error(resolve("dangling.db"));
    }

    #[test]
    fn without_a_root_a_path_is_kept_and_a_missing_root_is_refused() {
        let none = LocalRoot::default();
        assert_eq!(
            none.resolve("ns", "k", "/etc/x").unwrap(),
            PathBuf::from("/etc/x")
        );
        let e = LocalRoot::new(Some(Path::new("/no/such/folder"))).unwrap_err();
        assert!(e.contains("create the folder first"), "{e}");
    }
}
