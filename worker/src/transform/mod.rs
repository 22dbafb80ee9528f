//! The transform step of a shard: fetched JSON records → Arrow → the pipeline's SQL →
//! one Arrow batch for the sink.
//!
//! - [`infer`]: JSON → Arrow, with the declared schema or one inferred from the page;
//! - [`sql`]: DataFusion over the table `source`, off the caller's thread;
//! - [`limits`]: the memory and time one page's SQL may take.
//!
//! A [`Transformer`] is built once per shard and reused for every page; it holds no
//! connection or session, so it is cheap and `Send + Sync`.

pub mod infer;
pub mod limits;
pub mod sql;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use apitap_common::error::ErrorClass;
use apitap_common::spec::Field;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

pub use infer::{is_json_text, JSON_TEXT_METADATA_KEY};
pub use limits::TransformLimits;

/// Why a page could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The records do not fit the declared schema or are not JSON objects.
    #[error("bad records: {0}")]
    Records(String),
    /// The SQL does not plan or fails on this data (unknown column, bad cast, …);
    /// the message is DataFusion's.
    #[error("transform SQL failed: {0}")]
    Sql(String),
    /// DataFusion ran out of memory or similar; another attempt may succeed.
    #[error("transform ran out of resources: {0}")]
    Resources(String),
    /// The page's SQL went over a transform limit; the same page would again.
    #[error("transform over a limit: {0}")]
    Limit(String),
    /// A bug in ApiTap or DataFusion.
    #[error("internal transform error: {0}")]
    Internal(String),
}

impl TransformError {
    /// Records and SQL problems are the user's; they fail the same way on retry.
    pub fn class(&self) -> ErrorClass {
        match self {
            TransformError::Records(_) | TransformError::Sql(_) | TransformError::Limit(_) => {
                ErrorClass::User
            }
            TransformError::Resources(_) => ErrorClass::Transient,
            TransformError::Internal(_) => ErrorClass::Internal,
        }
    }
}

/// Turns one page of records into the rows to load.
#[derive(Debug, Clone)]
pub struct Transformer {
    /// `None` without `spec.transform`: the records' Arrow batch is loaded as it is.
    sql: Option<Arc<str>>,
    /// The declared source schema as Arrow; `None` means infer per page.
    declared: Option<SchemaRef>,
    /// Memory and time one page's SQL may take.
    limits: TransformLimits,
    /// Without `declared`: the schema the last page decoded with, tried first on the next.
    last: Arc<std::sync::Mutex<Option<SchemaRef>>>,
}

impl Transformer {
    /// `sql` runs over the table `source`; `declared` is `spec.schema` (inferred per page
    /// when `None`).
    pub fn new(sql: &str, declared: Option<&[Field]>) -> Self {
        Self {
            sql: Some(Arc::from(sql)),
            declared: declared.map(infer::declared_schema),
            limits: TransformLimits::default(),
            last: Default::default(),
        }
    }

    /// For a pipeline without `spec.transform`: JSON → Arrow only. What `SELECT * FROM
    /// source` would return, without planning and running a query per page.
    pub fn passthrough(declared: Option<&[Field]>) -> Self {
        Self {
            sql: None,
            ..Self::new("", declared)
        }
    }

    /// Bounds every page's SQL by `limits`.
    pub fn with_limits(mut self, limits: TransformLimits) -> Self {
        self.limits = limits;
        self
    }

    /// JSON objects → Arrow (declared or inferred schema) → SQL (if any) → one batch.
    ///
    /// Returns `Ok(None)` when there is nothing to load: the page was empty or the query
    /// produced no rows (the caller still commits the checkpoint). The JSON decoding runs on
    /// the caller's task (it is fast); DataFusion runs on a blocking thread so it never
    /// stalls an actor's thread.
    pub async fn run(
        &self,
        records: &[serde_json::Value],
    ) -> Result<Option<RecordBatch>, TransformError> {
        if records.is_empty() {
            return Ok(None);
        }
        let batch = match &self.declared {
            Some(declared) => infer::records_to_batch(records, Some(declared.clone()))?,
            None => {
                let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let batch = infer::records_to_batch_like(records, last)?;
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(batch.schema());
                batch
            }
        };
        match &self.sql {
            Some(sql) => sql::run_off_thread(sql.clone(), batch, self.limits).await,
            None => Ok((batch.num_rows() > 0).then_some(batch)),
        }
    }
}
