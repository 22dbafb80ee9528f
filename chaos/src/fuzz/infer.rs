//! The `infer` target: JSON records → one Arrow batch
//! (`apitap_worker::transform::infer::records_to_batch`), with a schema inferred from the
//! records or declared by the spec.
//!
//! Records share keys whose values change type from record to record, hold huge numbers,
//! hostile keys and strings, and nest as deep as a fetched body can (serde_json's 128).
//! Properties: records that are not all objects are refused with a `Records` error naming
//! the first such record; otherwise an inferred schema always decodes (irregular columns
//! become JSON text), the batch has one row per record and one column per distinct key,
//! named exactly as the key; a declared schema gives its own columns or a `Records` error.
//! Never an internal error, never a panic.

use std::collections::BTreeSet;

use apitap_common::fuzz::json;
use apitap_common::spec::{Field, FieldType};
use apitap_worker::transform::infer::{declared_schema, records_to_batch};
use apitap_worker::transform::TransformError;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value};

/// The input of one case.
#[derive(Debug, Clone)]
pub struct InferInput {
    pub records: Vec<Value>,
    /// `spec.schema`, when the case declares one.
    pub declared: Option<Vec<Field>>,
}

fn record() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => prop::collection::vec((json::key(), json::any_value()), 0..8)
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        1 => json::scalar(),
    ]
}

fn field() -> impl Strategy<Value = Field> {
    let data_type = prop::sample::select(
        &[
            FieldType::String,
            FieldType::Int64,
            FieldType::Float64,
            FieldType::Boolean,
            FieldType::Json,
        ][..],
    );
    (json::key(), data_type, any::<bool>()).prop_map(|(name, data_type, nullable)| Field {
        name,
        data_type,
        nullable,
    })
}

/// Up to 12 records, a declared schema in one case of four.
pub fn input() -> impl Strategy<Value = InferInput> {
    let declared = prop_oneof![
        3 => Just(None),
        1 => prop::collection::vec(field(), 1..6).prop_map(|mut fields| {
            // The validator refuses duplicate names; so does the generator.
            let mut seen = BTreeSet::new();
            fields.retain(|f| seen.insert(f.name.clone()));
            Some(fields)
        }),
    ];
    (prop::collection::vec(record(), 0..12), declared)
        .prop_map(|(records, declared)| InferInput { records, declared })
}

/// The property of one case.
pub fn check(input: InferInput) -> Result<(), TestCaseError> {
    let InferInput { records, declared } = input;
    let schema = declared.as_deref().map(declared_schema);
    let result = records_to_batch(&records, schema.clone());
    if let Some(i) = records.iter().position(|r| !r.is_object()) {
        match &result {
            Err(TransformError::Records(m)) => {
                prop_assert!(m.contains(&format!("record {i} ")), "{m}")
            }
            other => prop_assert!(false, "record {i} is not an object, got {other:?}"),
        }
        return Ok(());
    }
    match (result, schema) {
        (Ok(batch), None) => {
            prop_assert_eq!(batch.num_rows(), records.len());
            let keys: BTreeSet<&str> = records
                .iter()
                .filter_map(Value::as_object)
                .flat_map(|o| o.keys().map(String::as_str))
                .collect();
            let names: Vec<&str> = batch
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let unique: BTreeSet<&str> = names.iter().copied().collect();
            prop_assert_eq!(unique.len(), names.len(), "duplicate columns {:?}", names);
            prop_assert_eq!(unique, keys);
        }
        (Err(e), None) => prop_assert!(false, "inference failed: {e:?}"),
        (Ok(batch), Some(schema)) => {
            prop_assert_eq!(batch.num_rows(), records.len());
            prop_assert_eq!(batch.schema_ref().fields(), schema.fields());
        }
        (Err(TransformError::Records(m)), Some(_)) => {
            prop_assert!(
                m.starts_with("records do not match the declared schema: "),
                "{m}"
            );
        }
        (Err(e), Some(_)) => prop_assert!(false, "not a records error: {e:?}"),
    }
    Ok(())
}
