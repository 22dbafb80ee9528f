//! The object store a files sink writes to: a local folder or an S3-compatible bucket, and
//! how its errors map to [`SinkError`].

use std::sync::Arc;

use apitap_common::spec::FilesSink as FilesSpec;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::sink::SinkError;

/// The store and the table's folder in it.
pub fn open(spec: &FilesSpec) -> Result<(Arc<dyn ObjectStore>, Path), SinkError> {
    if let Some(rest) = spec.url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(s3) = &spec.s3 {
            if let Some(e) = &s3.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = &s3.region {
                b = b.with_region(r);
            }
            if let Some(k) = &s3.access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(k) = &s3.secret_access_key {
                b = b.with_secret_access_key(k);
            }
            b = b.with_allow_http(s3.allow_http);
        }
        let store = b
            .build()
            .map_err(|e| SinkError::User(format!("sink.files: the S3 store: {e}")))?;
        let root = Path::parse(prefix.trim_end_matches('/'))
            .map_err(|e| SinkError::User(format!("sink.files.url: the prefix {prefix:?}: {e}")))?
            .join(spec.table.as_str());
        return Ok((Arc::new(store), root));
    }
    let dir = spec.url.strip_prefix("file://").unwrap_or(&spec.url);
    std::fs::create_dir_all(dir).map_err(|e| {
        SinkError::User(format!(
            "sink.files.url: cannot create the folder {dir}: {e}"
        ))
    })?;
    let store = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| SinkError::User(format!("sink.files.url: the folder {dir}: {e}")))?;
    Ok((Arc::new(store), Path::from(spec.table.as_str())))
}

/// Writes `bytes` at `path` (replacing it: a retried commit writes the same part).
pub async fn put(store: &dyn ObjectStore, path: &Path, bytes: Vec<u8>) -> Result<(), SinkError> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(error)
}

/// Refusals of the store's owner are the pipeline's to fix; anything else may pass.
pub fn error(e: object_store::Error) -> SinkError {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } | E::InvalidPath { .. } => {
            SinkError::User(format!("the file store refused: {e}"))
        }
        E::NotSupported { .. } | E::NotImplemented { .. } => SinkError::User(format!(
            "the file store cannot create an object only if it is absent, which the files sink needs: {e}"
        )),
        other => SinkError::Transient(format!("the file store: {other}")),
    }
}
