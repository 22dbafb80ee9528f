//! Runs the pipeline's SQL over one batch with DataFusion.
//!
//! A fresh `SessionContext` per page is cheap next to an HTTP round trip and keeps pages
//! independent (no state leaks between pages or shards). Identifier normalization is off so
//! that API keys in camelCase are selectable without quotes (`SELECT userName FROM source`).
//! One target partition: a page is one in-memory batch, so repartitioning would only add
//! tasks and threads. Only queries are allowed: DDL, DML and `SET` statements are refused.

use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::TransformError;

/// The table name the SQL reads.
pub const SOURCE_TABLE: &str = "source";

/// Runs [`run_sql`] on a blocking-pool thread (driving the future with the runtime's
/// handle), so CPU-heavy plans never occupy an actor's or the caller's thread.
pub async fn run_off_thread(
    sql: Arc<str>,
    batch: RecordBatch,
) -> Result<Option<RecordBatch>, TransformError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(run_sql(&sql, batch)))
        .await
        .map_err(|e| TransformError::Internal(format!("transform task failed: {e}")))?
}

/// Registers `batch` as `source`, runs `sql`, concatenates the output. `None` when the
/// query yields no rows.
pub async fn run_sql(sql: &str, batch: RecordBatch) -> Result<Option<RecordBatch>, TransformError> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false);
    let ctx = SessionContext::new_with_config(config);
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(classify)?;
    ctx.register_table(SOURCE_TABLE, Arc::new(table))
        .map_err(classify)?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await.map_err(classify)?;
    let batches = df.collect().await.map_err(classify)?;
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let out = concat_batches(&first.schema(), &batches)
        .map_err(|e| TransformError::Internal(format!("concatenating output: {e}")))?;
    Ok((out.num_rows() > 0).then_some(out))
}

/// Plan and data errors are the user's; DataFusion's message says what is wrong.
fn classify(err: DataFusionError) -> TransformError {
    let message = err.strip_backtrace();
    match err.find_root() {
        DataFusionError::Internal(_) | DataFusionError::ExecutionJoin(_) => {
            TransformError::Internal(message)
        }
        DataFusionError::ResourcesExhausted(_) | DataFusionError::IoError(_) => {
            TransformError::Resources(message)
        }
        _ => TransformError::Sql(message),
    }
}
