//! The object store a files sink writes to: a local folder or an S3-compatible bucket, and
//! how its errors map to [`SinkError`].
//!
//! An S3 store gets exactly the keys the pipeline's spec gives (secrets of the lease), never
//! the worker's own AWS environment or instance role: the endpoint is the pipeline's choice,
//! and the worker's credentials must not reach it. The endpoint is checked against the
//! worker's egress deny-list like every URL a pipeline names. A store must create objects
//! only if absent, which the manifest log's fencing rests on: [`probe_create_only`] proves
//! it before the first write.

use std::sync::Arc;

use apitap_common::spec::{FilesSink as FilesSpec, S3Options};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::fetch::Egress;
use crate::sink::SinkError;

/// The store and the table's folder in it.
pub async fn open(
    spec: &FilesSpec,
    egress: &Egress,
) -> Result<(Arc<dyn ObjectStore>, Path), SinkError> {
    let Some(rest) = spec.url.strip_prefix("s3://") else {
        return local(spec);
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let s3 = spec.s3.clone().unwrap_or_default();
    let (Some(key_id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) else {
        return Err(SinkError::User(
            "sink.files.s3: access_key_id and secret_access_key are required; a worker never \
             lends its own AWS credentials to a pipeline's store"
                .into(),
        ));
    };
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(s3.region.as_deref().unwrap_or("us-east-1"))
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .with_allow_http(s3.allow_http);
    if let Some(endpoint) = &s3.endpoint {
        check_endpoint(endpoint, &s3, egress).await?;
        b = b.with_endpoint(endpoint);
    }
    let store: Arc<dyn ObjectStore> = Arc::new(
        b.build()
            .map_err(|e| SinkError::User(format!("sink.files: the S3 store: {e}")))?,
    );
    let root = Path::parse(prefix.trim_end_matches('/'))
        .map_err(|e| SinkError::User(format!("sink.files.url: the prefix {prefix:?}: {e}")))?
        .join(spec.table.as_str());
    Ok((store, root))
}

fn local(spec: &FilesSpec) -> Result<(Arc<dyn ObjectStore>, Path), SinkError> {
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

/// The endpoint's scheme, its literal host and every address its name has now must pass
/// the worker's egress deny-list.
async fn check_endpoint(endpoint: &str, s3: &S3Options, egress: &Egress) -> Result<(), SinkError> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| SinkError::User(format!("sink.files.s3.endpoint {endpoint:?}: {e}")))?;
    if url.scheme() == "http" && !s3.allow_http {
        return Err(SinkError::User(
            "sink.files.s3.endpoint is http:// without allow_http: the keys would cross the \
             network in clear"
                .into(),
        ));
    }
    crate::sink::endpoint::check("sink.files.s3.endpoint", &url, egress).await
}

/// Creates a probe object under `root` twice: the second time must fail as "already
/// exists". A store that overwrites instead would let a zombie replace a newer lease's
/// manifest entry, so it is refused with a user error.
pub async fn probe_create_only(store: &dyn ObjectStore, root: &Path) -> Result<(), SinkError> {
    let probe = root
        .clone()
        .join("_apitap")
        .join(format!(".probe-{:032x}", rand::random::<u128>()));
    let create = || PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    store
        .put_opts(&probe, PutPayload::from_static(b"1"), create())
        .await
        .map_err(error)?;
    let second = store
        .put_opts(&probe, PutPayload::from_static(b"2"), create())
        .await;
    let _ = store.delete(&probe).await;
    match second {
        Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Ok(_) => Err(SinkError::User(
            "the file store overwrote an object that a create-only write should have left \
             alone; the files sink needs create-only writes (S3 If-None-Match, MinIO, R2, a \
             local disk) to fence out stale writers"
                .into(),
        )),
        Err(e) => Err(error(e)),
    }
}

/// Writes `bytes` at `path` (replacing it: a retried commit writes the same part).
pub async fn put(store: &dyn ObjectStore, path: &Path, bytes: Vec<u8>) -> Result<(), SinkError> {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(error)
}

/// Refusals of the store's owner are the pipeline's to fix; anything else may pass. (A
/// missing object is handled by the callers that expect one; here it means a missing
/// bucket.)
pub fn error(e: object_store::Error) -> SinkError {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::InvalidPath { .. }
        | E::NotFound { .. } => SinkError::User(format!("the file store refused: {e}")),
        E::NotSupported { .. } | E::NotImplemented { .. } => SinkError::User(format!(
            "the file store cannot create an object only if it is absent, which the files sink needs: {e}"
        )),
        other => SinkError::Transient(format!("the file store: {other}")),
    }
}
