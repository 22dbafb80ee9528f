//! A shard's log of manifest entries: `_apitap/PIPELINE/run-R/shard-S/v-N.json`, N = 1, 2, …
//! with no gaps. Entry N + 1 is created only if absent, and only by a writer that saw entry
//! N, so the log is one sequence; every entry carries its writer's fence and the checkpoint
//! after it, and names the part it makes visible (if the page had rows).

use apitap_common::checkpoint::Checkpoint;
use futures::TryStreamExt;
use object_store::path::{Path, PathPart};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::store;
use crate::sink::{ShardRef, SinkError};

/// One manifest entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its place in the shard's log (and its object name).
    pub version: u64,
    /// The fence of the lease that wrote it.
    pub fence: u64,
    /// The shard's checkpoint after this entry.
    pub checkpoint: Checkpoint,
    /// The part this entry makes visible (its path in the store), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Rows in that part.
    #[serde(default)]
    pub rows: u64,
    /// When it was written (Unix ms).
    pub at_ms: u64,
}

impl Entry {
    /// The entry that claims the shard for `fence` after `head` (none: a new shard).
    pub fn claim(head: Option<&Entry>, fence: u64) -> Result<Entry, SinkError> {
        Ok(Entry {
            version: head.map_or(Ok(1), Entry::following)?,
            fence,
            checkpoint: head.map_or_else(Checkpoint::start, |h| h.checkpoint.clone()),
            part: None,
            rows: 0,
            at_ms: apitap_common::time::now_ms(),
        })
    }

    /// The entry after this one: `part` (path, rows) committed with `checkpoint`.
    pub fn next(
        &self,
        fence: u64,
        checkpoint: Checkpoint,
        part: Option<(String, u64)>,
    ) -> Result<Entry, SinkError> {
        let (part, rows) = part.map_or((None, 0), |(p, r)| (Some(p), r));
        Ok(Entry {
            version: Entry::following(self)?,
            fence,
            checkpoint,
            part,
            rows,
            at_ms: apitap_common::time::now_ms(),
        })
    }

    fn following(&self) -> Result<u64, SinkError> {
        self.version
            .checked_add(1)
            .ok_or_else(|| SinkError::Internal("the manifest log is full".into()))
    }

    /// The same commit: fence, checkpoint, part and rows (not the time).
    fn same_commit(&self, other: &Entry) -> bool {
        self.fence == other.fence
            && self.checkpoint == other.checkpoint
            && self.part == other.part
            && self.rows == other.rows
    }
}

/// Where one shard's entries, parts and dead letters are.
#[derive(Debug)]
pub struct ShardLog<'a> {
    store: &'a dyn ObjectStore,
    /// `ROOT/_apitap/PIPELINE/run-R/shard-S`.
    dir: Path,
    /// `ROOT/PIPELINE/run-R/shard-S`.
    data: Path,
}

impl<'a> ShardLog<'a> {
    pub fn new(store: &'a dyn ObjectStore, root: &Path, shard: &ShardRef) -> Self {
        // One path segment whatever the name holds ('/' and '..' are percent-encoded).
        let pipeline = PathPart::from(shard.pipeline.as_str());
        let run = format!("run-{}", shard.run_id);
        let shard_dir = format!("shard-{}", shard.shard);
        let under = |base: Path| {
            base.join(pipeline.clone())
                .join(run.as_str())
                .join(shard_dir.as_str())
        };
        Self {
            store,
            dir: under(root.clone().join("_apitap")),
            data: under(root.clone()),
        }
    }

    fn entry_path(&self, version: u64) -> Path {
        self.dir.clone().join(format!("v-{version:012}.json"))
    }

    /// The part a lease of `fence` writes when its checkpoint reaches `pages` pages.
    pub fn part_path(&self, fence: u64, pages: u64, extension: &str) -> Path {
        self.data
            .clone()
            .join(format!("part-{fence:020}-{pages:012}.{extension}"))
    }

    pub fn dead_letter_path(&self, page: u64, fence: u64) -> Path {
        self.dir
            .clone()
            .join("dead-letters")
            .join(format!("page-{page:012}-fence-{fence:020}.jsonl"))
    }

    /// The newest entry (`None`: the shard has none yet).
    pub async fn newest(&self) -> Result<Option<Entry>, SinkError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.dir))
            .await
            .map_err(store::error)?;
        let newest = listed
            .objects
            .iter()
            .filter_map(|o| entry_version(o.location.filename()?))
            .max();
        let Some(mut version) = newest else {
            return Ok(None);
        };
        // A listing may lag behind a create: step forward until an entry is missing.
        let mut entry = self.read(version).await?;
        while let Some(next) = self.read(version.saturating_add(1)).await? {
            version += 1;
            entry = Some(next);
        }
        Ok(entry)
    }

    /// Entry `version`, if it exists.
    pub async fn read(&self, version: u64) -> Result<Option<Entry>, SinkError> {
        let entry = read_entry(self.store, &self.entry_path(version)).await?;
        match entry {
            Some(e) if e.version != version => Err(SinkError::Internal(format!(
                "manifest entry {version} says it is entry {}",
                e.version
            ))),
            other => Ok(other),
        }
    }

    /// Creates `entry` unless its version exists: `Ok(false)` then.
    pub async fn create(&self, entry: &Entry) -> Result<bool, SinkError> {
        let body = serde_json::to_vec(entry)
            .map_err(|e| SinkError::Internal(format!("manifest entry: {e}")))?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let path = self.entry_path(entry.version);
        match self
            .store
            .put_opts(&path, PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(store::error(e)),
        }
    }

    /// Appends `entry` (the one after `head`). If that version exists, it is a newer
    /// lease's claim ([`SinkError::Fenced`]) or this very entry written by an attempt whose
    /// answer was lost (then it is returned).
    pub async fn append_after(&self, head: &Entry, entry: Entry) -> Result<Entry, SinkError> {
        if self.create(&entry).await? {
            return Ok(entry);
        }
        let found = self.read(entry.version).await?.ok_or_else(|| {
            SinkError::Transient(format!(
                "manifest entry {} exists but cannot be read yet",
                entry.version
            ))
        })?;
        if found.fence > head.fence {
            return Err(SinkError::Fenced {
                stored: found.fence,
                ours: head.fence,
            });
        }
        if found.same_commit(&entry) {
            return Ok(found);
        }
        Err(SinkError::Internal(format!(
            "manifest entry {} was written by another writer with fence {}",
            entry.version, found.fence
        )))
    }

    /// `Ok` unless a newer lease appended after `head`.
    pub async fn check_still_owned(&self, head: &Entry) -> Result<(), SinkError> {
        match self.read(head.version.saturating_add(1)).await? {
            Some(e) if e.fence > head.fence => Err(SinkError::Fenced {
                stored: e.fence,
                ours: head.fence,
            }),
            _ => Ok(()),
        }
    }
}

/// `v-000000000042.json` → 42.
fn entry_version(name: &str) -> Option<u64> {
    name.strip_prefix("v-")?.strip_suffix(".json")?.parse().ok()
}

async fn read_entry(store: &dyn ObjectStore, path: &Path) -> Result<Option<Entry>, SinkError> {
    let bytes = match store.get(path).await {
        Ok(got) => got.bytes().await.map_err(store::error)?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(store::error(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SinkError::Internal(format!("manifest entry {path} is unreadable: {e}")))
}

/// The parts the manifests under `root` name (every pipeline, run and shard written
/// there), with their rows: the data a reader should read. Other part files are orphans.
pub async fn visible_parts(
    store: &dyn ObjectStore,
    root: &Path,
) -> Result<Vec<(String, u64)>, SinkError> {
    let entries: Vec<_> = store
        .list(Some(&root.clone().join("_apitap")))
        .try_collect()
        .await
        .map_err(store::error)?;
    let mut parts = Vec::new();
    for meta in entries {
        if meta.location.filename().and_then(entry_version).is_none() {
            continue;
        }
        if let Some(Entry {
            part: Some(part),
            rows,
            ..
        }) = read_entry(store, &meta.location).await?
        {
            parts.push((part, rows));
        }
    }
    parts.sort();
    Ok(parts)
}
