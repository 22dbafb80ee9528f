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

use super::{TransformError, TransformLimits};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

/// The table name the SQL reads.
pub const SOURCE_TABLE: &str = "source";

/// Rows per batch the page is fed to DataFusion in (see [`run_sql`]).
const SLICE_ROWS: usize = 64;

/// Runs [`run_sql`] on a blocking-pool thread (driving the future with the runtime's
/// handle), so CPU-heavy plans never occupy an actor's or the caller's thread. The plan is
/// dropped when `limits.timeout` passes or when the caller stops waiting (a revoked or
/// cancelled lease drops its shard loop). Dropping takes effect at the plan's next yield to
/// the runtime: DataFusion's sources yield every so many input batches, so work done
/// between two yields (a cross join inside one small page) runs to its end first.
pub async fn run_off_thread(
    sql: Arc<str>,
    batch: RecordBatch,
    limits: TransformLimits,
) -> Result<Option<RecordBatch>, TransformError> {
    let handle = tokio::runtime::Handle::current();
    // Dropped with this future: the blocking side sees its receiver end and gives up.
    let (_caller, gone) = tokio::sync::oneshot::channel::<()>();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let run = tokio::time::timeout(
                limits.timeout,
                run_sql(&sql, batch, limits.max_memory_bytes),
            );
            tokio::select! {
                r = run => r.unwrap_or_else(|_| Err(TransformError::Limit(format!(
                    "one page's SQL ran longer than the transform timeout of {:?}; use smaller \
                     pages, simpler SQL, or raise --transform-timeout",
                    limits.timeout
                )))),
                _ = gone => Err(TransformError::Internal("the lease stopped waiting".into())),
            }
        })
    })
    .await
    .map_err(|e| TransformError::Internal(format!("transform task failed: {e}")))?
}

/// Registers `batch` as `source`, runs `sql` with at most `max_memory` bytes for its
/// operators, concatenates the output. `None` when the query yields no rows.
pub async fn run_sql(
    sql: &str,
    batch: RecordBatch,
    max_memory: usize,
) -> Result<Option<RecordBatch>, TransformError> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .set_bool("datafusion.sql_parser.enable_ident_normalization", false);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(max_memory, 1.0)
        .build_arc()
        .map_err(classify)?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    // Small slices: DataFusion's sources yield to the runtime every so many batches, and
    // only at a yield can the timeout or a cancelled lease stop the plan.
    let slices = (0..batch.num_rows())
        .step_by(SLICE_ROWS)
        .map(|at| batch.slice(at, SLICE_ROWS.min(batch.num_rows() - at)))
        .collect();
    let table = MemTable::try_new(batch.schema(), vec![slices]).map_err(classify)?;
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
        DataFusionError::ResourcesExhausted(_) => TransformError::Limit(format!(
            "{message} (the transform memory limit; use smaller pages, simpler SQL, or raise \
             --transform-max-memory-mib)"
        )),
        DataFusionError::IoError(_) => TransformError::Resources(message),
        _ => TransformError::Sql(message),
    }
}
