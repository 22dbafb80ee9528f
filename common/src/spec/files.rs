//! `spec.sink.files`: immutable part files (Parquet, JSON Lines or CSV) in a local folder or
//! an S3-compatible bucket, made visible by a per-shard manifest (the worker's
//! `sink/files` module; docs/pipeline-reference.md "Files").

use serde::{Deserialize, Serialize};

use super::parse::Problem;

const FILES: &str = "spec.sink.files";

/// Longest folder name (`table`) under the sink's URL.
pub const MAX_FILES_TABLE_CHARS: usize = 128;

/// Where and how part files are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSink {
    /// `s3://bucket/prefix`, `file:///absolute/folder` or an absolute folder path.
    pub url: String,
    /// The folder under `url` that holds this table's parts and manifests.
    pub table: String,
    #[serde(default)]
    pub format: FileFormat,
    /// S3 connection settings (with an `s3://` URL): the keys are required, since a worker
    /// never lends its own AWS credentials to a pipeline's store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Options>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    #[default]
    Parquet,
    Jsonl,
    Csv,
}

impl FileFormat {
    /// The file name extension of a part.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Csv => "csv",
        }
    }
}

/// An S3-compatible store. Keys should be secrets (`"${S3_SECRET}"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    /// Another endpoint than AWS (MinIO, Ceph, R2, a test server): `https://host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Allow an `http://` endpoint (default false: keys would cross the network in clear).
    #[serde(default)]
    pub allow_http: bool,
}

/// A folder name that is one safe path segment on every store.
fn is_folder_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_FILES_TABLE_CHARS
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The rules of `spec.sink.files` (the secrets in it are checked like every other).
pub(crate) fn rules(f: &FilesSink, out: &mut Vec<Problem>) {
    if !is_folder_name(&f.table) {
        out.push(
            Problem::new(format!("{FILES}.table"), format!("invalid folder name {:?}", f.table))
                .hint(format!(
                    "letters, digits, _, - and . (not first), at most {MAX_FILES_TABLE_CHARS} characters"
                )),
        );
    }
    let s3_path = f.url.strip_prefix("s3://");
    let is_s3 = s3_path.is_some();
    let local = f.url.strip_prefix("file://").unwrap_or(&f.url);
    if let Some(path) = s3_path {
        let bucket = path.split('/').next().unwrap_or_default();
        if bucket.is_empty() && !f.url.contains("${") {
            out.push(
                Problem::new(format!("{FILES}.url"), "the S3 URL names no bucket")
                    .hint("s3://bucket/optional/prefix"),
            );
        }
    } else if !f.url.starts_with("${") && (!local.starts_with('/') || has_dot_dot(local)) {
        out.push(
            Problem::new(
                format!("{FILES}.url"),
                format!("{:?} is neither an s3:// URL nor an absolute folder", f.url),
            )
            .hint("s3://bucket/prefix, file:///data/exports or /data/exports (no `..`)"),
        );
    }
    match &f.s3 {
        Some(s3) => s3_rules(s3, is_s3 || f.url.starts_with("${"), out),
        None if is_s3 => out.push(
            Problem::new(format!("{FILES}.s3"), "an s3:// URL needs the store's keys")
                .hint("s3: { access_key_id: \"${S3_KEY_ID}\", secret_access_key: \"${S3_SECRET_KEY}\" }; a worker never lends its own AWS credentials"),
        ),
        None => {}
    }
}

fn has_dot_dot(path: &str) -> bool {
    path.split('/').any(|s| s == "..")
}

fn s3_rules(s3: &S3Options, is_s3: bool, out: &mut Vec<Problem>) {
    if !is_s3 {
        out.push(
            Problem::new(
                format!("{FILES}.s3"),
                "S3 settings with a URL that is not s3://",
            )
            .hint("remove `s3`, or write url: s3://bucket/prefix"),
        );
    }
    if let Some(e) = s3.endpoint.as_deref().filter(|e| !e.contains("${")) {
        match url::Url::parse(e) {
            Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && s3.allow_http) => {}
            Ok(u) if u.scheme() == "http" => out.push(
                Problem::new(
                    format!("{FILES}.s3.endpoint"),
                    "an http:// endpoint sends the keys in clear",
                )
                .hint("use https://, or set allow_http: true for a store on a trusted network"),
            ),
            _ => out.push(
                Problem::new(
                    format!("{FILES}.s3.endpoint"),
                    format!("not an http(s) URL: {e:?}"),
                )
                .hint("for example https://minio.internal:9000"),
            ),
        }
    }
    if s3.access_key_id.is_none() || s3.secret_access_key.is_none() {
        out.push(
            Problem::new(
                format!("{FILES}.s3"),
                "access_key_id and secret_access_key are both required",
            )
            .hint("a worker never lends its own AWS credentials to a pipeline's store"),
        );
    }
    if s3
        .secret_access_key
        .as_deref()
        .is_some_and(|k| !k.contains("${"))
    {
        out.push(
            Problem::new(
                format!("{FILES}.s3.secret_access_key"),
                "must be a secret reference, not the key itself",
            )
            .hint("write secret_access_key: \"${S3_SECRET_KEY}\" and export S3_SECRET_KEY=..."),
        );
    }
}
