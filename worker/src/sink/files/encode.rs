//! A page's rows as the bytes of one part file.

use std::sync::Arc;

use apitap_common::spec::FileFormat;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::sink::SinkError;

/// `batch` in `format`. A CSV part cannot hold nested values: that is the pipeline's to fix.
pub fn encode(batch: &RecordBatch, format: FileFormat) -> Result<Vec<u8>, SinkError> {
    match format {
        FileFormat::Parquet => parquet(batch),
        FileFormat::Jsonl => {
            let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
            w.write(batch).map_err(|e| user("JSON Lines", &e))?;
            w.finish().map_err(|e| user("JSON Lines", &e))?;
            Ok(w.into_inner())
        }
        FileFormat::Csv => {
            let mut w = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .build(Vec::new());
            w.write(batch).map_err(|e| {
                SinkError::User(format!(
                    "a CSV part cannot hold this page: {e}; flatten nested columns in the \
                     transform, or use format: parquet or jsonl"
                ))
            })?;
            Ok(w.into_inner())
        }
    }
}

fn parquet(batch: &RecordBatch) -> Result<Vec<u8>, SinkError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&batch.schema()), Some(props))
        .map_err(|e| user("Parquet", &e))?;
    w.write(batch).map_err(|e| user("Parquet", &e))?;
    w.close().map_err(|e| user("Parquet", &e))?;
    Ok(buf)
}

fn user(format: &str, e: &dyn std::fmt::Display) -> SinkError {
    SinkError::User(format!("the page cannot be written as {format}: {e}"))
}
