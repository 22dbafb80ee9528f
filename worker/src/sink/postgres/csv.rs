//! The rows of a batch as CSV for `COPY … (FORMAT csv)`, straight from the Arrow arrays.
//!
//! NULL is an empty unquoted field; every string is quoted (so an empty string stays distinct
//! from NULL and `\.` can never end the data); numbers and booleans are written bare; nested
//! values and JSON columns are their JSON text, quoted. Each value is what the JSON of the
//! row (arrow_json's encoding, as the other dialects read it) holds: strings are read from
//! the array directly, every other type goes through arrow_json's encoder for its column.
//! Non-finite floats, which JSON cannot hold, are NULL.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow_json::writer::{make_encoder, EncoderOptions, NullableEncoder};

use crate::sink::sql::table::{Column, ValueKind};
use crate::sink::SinkError;

/// How one column's values are read.
enum Source<'a> {
    /// A string column written as its text (scalar strings and JSON text alike).
    Text(&'a ArrayRef),
    /// Any other column: its JSON encoding, quoted when it is a string, an object or an
    /// array, or always (`json`) for nested values.
    Json {
        encoder: NullableEncoder<'a>,
        nested: bool,
    },
}

/// The `columns` of `batch` as CSV.
pub(super) fn to_csv(batch: &RecordBatch, columns: &[Column]) -> Result<Vec<u8>, SinkError> {
    let options = EncoderOptions::default();
    let schema = batch.schema();
    let fields = schema.fields();
    let mut sources = Vec::with_capacity(columns.len());
    for c in columns {
        let (Some(field), Some(array)) = (fields.get(c.index), batch.columns().get(c.index)) else {
            return Err(SinkError::Internal(format!(
                "column {:?} is not in the batch",
                c.name
            )));
        };
        let text = matches!(
            array.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        );
        sources.push(if text && c.kind != ValueKind::JsonValue {
            Source::Text(array)
        } else {
            let encoder = make_encoder(field, array.as_ref(), &options).map_err(|e| {
                SinkError::User(format!("cannot encode the rows for the sink: {e}"))
            })?;
            Source::Json {
                encoder,
                nested: c.kind == ValueKind::JsonValue,
            }
        });
    }
    // Logical nulls: a column of the Null type has no null buffer, yet every value is null.
    let nulls: Vec<Option<NullBuffer>> = columns
        .iter()
        .filter_map(|c| batch.columns().get(c.index))
        .map(|a| a.logical_nulls())
        .collect();
    let mut out = Vec::with_capacity(batch.num_rows() * columns.len() * 12);
    let mut scratch = Vec::new();
    for row in 0..batch.num_rows() {
        for (i, (source, nulls)) in sources.iter_mut().zip(&nulls).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                continue;
            }
            match source {
                Source::Text(a) => quote(&mut out, text_at(a, row).as_bytes()),
                Source::Json { encoder, nested } => {
                    scratch.clear();
                    encoder.encode(row, &mut scratch);
                    write_json(&mut out, &scratch, *nested)?;
                }
            }
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// The string at `row` of a string array (checked by the caller).
fn text_at(array: &ArrayRef, row: usize) -> &str {
    match array.data_type() {
        DataType::LargeUtf8 => array.as_string::<i64>().value(row),
        DataType::Utf8View => array.as_string_view().value(row),
        _ => array.as_string::<i32>().value(row),
    }
}

/// One value from its JSON encoding: `null` (a non-finite float) is NULL, a string is its
/// text, an object or array (or anything in a `nested` column) its JSON text, quoted; a
/// number or boolean is written bare.
fn write_json(out: &mut Vec<u8>, json: &[u8], nested: bool) -> Result<(), SinkError> {
    match json.first() {
        _ if json == b"null" => {}
        Some(b'"') if !nested => {
            let text: String = serde_json::from_slice(json)
                .map_err(|e| SinkError::Internal(format!("re-reading an encoded value: {e}")))?;
            quote(out, text.as_bytes());
        }
        Some(b'"' | b'{' | b'[') => quote(out, json),
        _ if nested => quote(out, json),
        _ => out.extend_from_slice(json),
    }
    Ok(())
}

fn quote(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
#[path = "csv_tests.rs"]
mod tests;
