//! JSON records → one Arrow [`RecordBatch`].
//!
//! The schema is the declared one (`spec.schema`) or is inferred from the page with
//! arrow-json: keys in first-seen order (serde_json's map order), int and float mixed in a
//! column widen to Float64, nested objects stay Struct and arrays stay List. Real APIs send
//! messier data than arrow-json accepts (an object in one record and a string in the next,
//! a scalar where a list was seen, …); rather than failing the page, such a column becomes
//! a Utf8 column holding each value's JSON text. Declared `json` fields are stored the same
//! way. Those columns carry the field metadata [`JSON_TEXT_METADATA_KEY`] so that a sink can
//! give them a JSON column type (JSONB in PostgreSQL).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apitap_common::spec::{Field as SpecField, FieldType};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow_json::reader::infer_json_schema_from_iterator;
use arrow_json::ReaderBuilder;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::TransformError;

/// Field metadata key marking a Utf8 column whose values are JSON text.
pub const JSON_TEXT_METADATA_KEY: &str = "apitap.json";

/// A Utf8 field holding JSON text, marked as such.
pub fn json_text_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable).with_metadata(HashMap::from([(
        JSON_TEXT_METADATA_KEY.to_string(),
        "true".to_string(),
    )]))
}

/// Whether a column holds JSON text (a declared `json` field or an irregular column).
pub fn is_json_text(field: &Field) -> bool {
    field
        .metadata()
        .get(JSON_TEXT_METADATA_KEY)
        .map(String::as_str)
        == Some("true")
}

/// The Arrow schema of `spec.schema`.
pub fn declared_schema(fields: &[SpecField]) -> SchemaRef {
    let fields: Vec<Field> = fields
        .iter()
        .map(|f| match f.data_type {
            FieldType::String => Field::new(&f.name, DataType::Utf8, f.nullable),
            FieldType::Int64 => Field::new(&f.name, DataType::Int64, f.nullable),
            FieldType::Float64 => Field::new(&f.name, DataType::Float64, f.nullable),
            FieldType::Boolean => Field::new(&f.name, DataType::Boolean, f.nullable),
            FieldType::Json => json_text_field(&f.name, f.nullable),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Decodes `records` (each must be a JSON object) with `declared`, or with a schema
/// inferred from them.
pub fn records_to_batch(
    records: &[Value],
    declared: Option<SchemaRef>,
) -> Result<RecordBatch, TransformError> {
    let objects = as_objects(records)?;
    match declared {
        Some(schema) => decode(schema, &objects).map_err(|e| {
            TransformError::Records(format!("records do not match the declared schema: {e}"))
        }),
        None => {
            // The common case: arrow-json infers a schema that it can also decode.
            if let Ok(schema) = infer_json_schema_from_iterator(records.iter().map(Ok)) {
                if let Ok(batch) = decode(Arc::new(schema), &objects) {
                    return Ok(batch);
                }
            }
            let schema = infer_per_column(&objects);
            decode(schema, &objects).map_err(|e| TransformError::Records(e.to_string()))
        }
    }
}

/// Decodes `records` with `last`, the schema the shard's previous page decoded with, when
/// they fit it exactly (no field it lacks, every value of its column's type); otherwise as
/// [`records_to_batch`] does, inferring a schema from them. Inference costs about as much
/// as decoding, and most pages of a shard have the shape of the page before.
pub fn records_to_batch_like(
    records: &[Value],
    last: Option<SchemaRef>,
) -> Result<RecordBatch, TransformError> {
    if let Some(schema) = last {
        let objects = as_objects(records)?;
        if objects.iter().all(|o| object_fits(o, schema.fields())) {
            if let Ok(batch) = decode_with(schema, &objects, true) {
                return Ok(batch);
            }
        }
    }
    records_to_batch(records, None)
}

/// Whether every field of `object` is one of `fields` and its value fits that field's type
/// without loss (the decoder would turn 4.5 into an Int64 4).
fn object_fits(object: &Map<String, Value>, fields: &Fields) -> bool {
    object.iter().all(|(key, value)| {
        fields
            .iter()
            .find(|f| f.name() == key)
            .is_some_and(|f| is_json_text(f) || value_fits(value, f.data_type()))
    })
}

fn value_fits(value: &Value, t: &DataType) -> bool {
    match (value, t) {
        (Value::Null, _) => true,
        (Value::Bool(_), DataType::Boolean) => true,
        (Value::Number(n), DataType::Int64) => n.is_i64(),
        (Value::Number(_), DataType::Float64) => true,
        // A string column takes numbers and booleans as their text (coerce_primitive).
        (Value::String(_) | Value::Number(_) | Value::Bool(_), DataType::Utf8) => true,
        (Value::Array(items), DataType::List(item)) => {
            items.iter().all(|v| value_fits(v, item.data_type()))
        }
        (Value::Object(map), DataType::Struct(fields)) => object_fits(map, fields),
        _ => false,
    }
}

fn as_objects(records: &[Value]) -> Result<Vec<&Map<String, Value>>, TransformError> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            Value::Object(map) => Ok(map),
            other => Err(TransformError::Records(format!(
                "record {i} is not a JSON object but {}; point `records` at an array of objects",
                kind(other)
            ))),
        })
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The slow path, taken only when whole-page inference or decoding failed: infer and
/// test-decode each column alone; a column that fails either way becomes JSON text.
fn infer_per_column(objects: &[&Map<String, Value>]) -> SchemaRef {
    let mut keys: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for obj in objects {
        for k in obj.keys() {
            if seen.insert(k.as_str()) {
                keys.push(k);
            }
        }
    }
    let fields: Vec<Field> = keys
        .into_iter()
        .map(|key| infer_column(key, objects).unwrap_or_else(|| json_text_field(key, true)))
        .collect();
    Arc::new(Schema::new(fields))
}

fn infer_column(key: &str, objects: &[&Map<String, Value>]) -> Option<Field> {
    let single: Vec<Value> = objects
        .iter()
        .filter_map(|o| o.get(key))
        .map(|v| Value::Object(Map::from_iter([(key.to_string(), v.clone())])))
        .collect();
    let schema = infer_json_schema_from_iterator(single.iter().map(Ok)).ok()?;
    let field = schema.fields().first()?.as_ref().clone();
    let one = Arc::new(Schema::new(vec![field.clone()]));
    let mut decoder = ReaderBuilder::new(one)
        .with_coerce_primitive(true)
        .build_decoder()
        .ok()?;
    decoder.serialize(&single).ok()?;
    decoder.flush().ok()?;
    Some(field)
}

fn decode(schema: SchemaRef, objects: &[&Map<String, Value>]) -> Result<RecordBatch, ArrowError> {
    decode_with(schema, objects, false)
}

/// `strict`: a field the schema lacks is an error instead of being skipped.
fn decode_with(
    schema: SchemaRef,
    objects: &[&Map<String, Value>],
    strict: bool,
) -> Result<RecordBatch, ArrowError> {
    let json_text: HashSet<&str> = schema
        .fields()
        .iter()
        .filter(|f| is_json_text(f))
        .map(|f| f.name().as_str())
        .collect();
    let rows: Vec<Row<'_>> = objects
        .iter()
        .map(|map| Row {
            map,
            json_text: &json_text,
        })
        .collect();
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(objects.len().max(1))
        // Numbers and booleans in a string column become their text instead of an error.
        .with_coerce_primitive(true)
        .with_strict_mode(strict)
        .build_decoder()?;
    decoder.serialize(&rows)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

/// A record as the decoder sees it: JSON-text columns are replaced by their JSON text,
/// without copying the record.
struct Row<'a> {
    map: &'a Map<String, Value>,
    json_text: &'a HashSet<&'a str>,
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(self.map.len()))?;
        for (k, v) in self.map {
            if self.json_text.contains(k.as_str()) && !v.is_null() {
                m.serialize_entry(k, &v.to_string())?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}
