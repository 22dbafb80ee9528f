//! The files sink: each committed page is an immutable part file (Parquet, JSON Lines or
//! CSV) in a local folder or an S3-compatible bucket, made visible by a per-shard log of
//! manifest entries ([`log`]). Exactly once without transactions:
//!
//! - a part is named by (pipeline, run, shard, fence, pages after it), so a retried commit
//!   rewrites the same object and two leases never write the same name;
//! - the shard's log is a dense sequence of manifest entries `v-000000000001.json`, … each
//!   created only if absent (`PutMode::Create`: a hard link on a local disk, `If-None-Match`
//!   on S3). A writer appends entry `n + 1` only after it saw entry `n`, and an entry
//!   carries the writer's fence, so a claim by a newer lease is an entry a zombie meets when
//!   it tries to append: it then stops with [`SinkError::Fenced`];
//! - the visible data is the parts the entries name ([`log::visible_parts`]); a part no
//!   entry names (a crashed or fenced writer's) is an orphan that readers skip.
//!
//! Layout under `url`/`table` (docs/pipeline-reference.md "Files"):
//! `PIPELINE/run-R/shard-S/part-FENCE-PAGES.EXT` and
//! `_apitap/PIPELINE/run-R/shard-S/v-N.json` (+ `dead-letters/page-P.jsonl`).

mod encode;
pub mod log;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use apitap_common::checkpoint::Checkpoint;
use apitap_common::spec::{FileFormat, FilesSink as FilesSpec};
use arrow::record_batch::RecordBatch;
use object_store::path::Path;
use object_store::ObjectStore;

use self::log::{Entry, ShardLog};
use super::{DeadPage, ShardRef, SinkError};
use crate::fetch::Egress;

/// Claim attempts that lose a race for the next manifest entry before the claim gives up
/// (transient: the lease is tried again).
const MAX_CLAIM_RACES: u32 = 16;

/// A files sink: the store, the table's folder in it, and each shard's last seen entry.
#[derive(Debug)]
pub struct FilesSink {
    store: Arc<dyn ObjectStore>,
    root: Path,
    format: FileFormat,
    /// The newest entry this sink saw per shard (after a claim or a commit).
    heads: HashMap<ShardRef, Entry>,
}

impl FilesSink {
    /// Opens the store `spec` names (a local folder is created if missing; an S3
    /// endpoint must pass `egress`) and proves that it creates objects only if absent.
    pub async fn open(spec: &FilesSpec, egress: &Egress) -> Result<Self, SinkError> {
        let (store, root) = store::open(spec, egress).await?;
        store::probe_create_only(store.as_ref(), &root).await?;
        Ok(Self::with_store(store, root, spec.format))
    }

    /// A sink over `store`, writing under `root`.
    pub fn with_store(store: Arc<dyn ObjectStore>, root: Path, format: FileFormat) -> Self {
        Self {
            store,
            root,
            format,
            heads: HashMap::new(),
        }
    }

    /// The parts the manifests name, with their rows: what a reader should read (paths
    /// relative to the local folder, or to the bucket).
    pub async fn visible_parts(&self) -> Result<Vec<(String, u64)>, SinkError> {
        log::visible_parts(self.store.as_ref(), &self.root).await
    }

    fn log(&self, shard: &ShardRef) -> ShardLog<'_> {
        ShardLog::new(self.store.as_ref(), &self.root, shard)
    }

    /// Claims `shard` for `fence`: appends an entry with the fence and the newest
    /// checkpoint, unless the newest entry has this fence already.
    pub async fn claim(&mut self, shard: &ShardRef, fence: u64) -> Result<Checkpoint, SinkError> {
        let log = self.log(shard);
        for _ in 0..MAX_CLAIM_RACES {
            let head = log.newest().await?;
            if let Some(h) = &head {
                if h.fence > fence {
                    return Err(SinkError::Fenced {
                        stored: h.fence,
                        ours: fence,
                    });
                }
                if h.fence == fence {
                    let checkpoint = h.checkpoint.clone();
                    self.heads.insert(shard.clone(), h.clone());
                    return Ok(checkpoint);
                }
            }
            let entry = Entry::claim(head.as_ref(), fence)?;
            if log.create(&entry).await? {
                let checkpoint = entry.checkpoint.clone();
                self.heads.insert(shard.clone(), entry);
                return Ok(checkpoint);
            }
        }
        Err(SinkError::Transient(format!(
            "the claim lost {MAX_CLAIM_RACES} races for the shard's next manifest entry"
        )))
    }

    /// Writes `batch` as a part, then appends the entry that names it with `checkpoint`.
    pub async fn commit(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        batch: Option<&RecordBatch>,
        checkpoint: &Checkpoint,
    ) -> Result<(), SinkError> {
        let head = self.owned_head(shard, fence)?;
        let log = self.log(shard);
        let part = match batch.filter(|b| b.num_rows() > 0) {
            Some(b) => {
                let path = log.part_path(fence, checkpoint.pages, self.format.extension());
                let bytes = encode::encode(b, self.format)?;
                store::put(self.store.as_ref(), &path, bytes).await?;
                Some((path.to_string(), b.num_rows() as u64))
            }
            None => None,
        };
        let entry = head.next(fence, checkpoint.clone(), part)?;
        let written = log.append_after(&head, entry).await?;
        self.heads.insert(shard.clone(), written);
        Ok(())
    }

    /// Keeps the records of page `dead.page` in `dead-letters/page-P-fence-F.jsonl` beside the
    /// shard's log, if `fence` still owns the shard. Rewriting the same page is idempotent,
    /// and a stale lease cannot overwrite a newer one's file.
    pub async fn dead_letter(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        dead: DeadPage<'_>,
    ) -> Result<(), SinkError> {
        let DeadPage {
            page,
            records,
            error,
        } = dead;
        let head = self.owned_head(shard, fence)?;
        let log = self.log(shard);
        log.check_still_owned(&head).await?;
        let mut text = String::new();
        for (index, record) in records.iter().enumerate() {
            let line =
                serde_json::json!({"page": page, "index": index, "error": error, "record": record});
            text.push_str(&line.to_string());
            text.push('\n');
        }
        store::put(
            self.store.as_ref(),
            &log.dead_letter_path(page, fence),
            text.into_bytes(),
        )
        .await
    }

    /// The newest entry this sink saw for `shard`, which must be under `fence`.
    fn owned_head(&self, shard: &ShardRef, fence: u64) -> Result<Entry, SinkError> {
        match self.heads.get(shard) {
            Some(h) if h.fence == fence => Ok(h.clone()),
            Some(h) if h.fence > fence => Err(SinkError::Fenced {
                stored: h.fence,
                ours: fence,
            }),
            _ => Err(SinkError::Internal(
                "commit before claim: this lease has not claimed the shard".into(),
            )),
        }
    }
}
